"""Request lines written in batches (servicekit/logbatch.py): what reaches the file, and when."""
import logging
import threading

import pytest

from harness.stack import poll
from servicekit.logbatch import BatchingStreamHandler


@pytest.fixture
def log(tmp_path):
    """A logger writing through a BatchingStreamHandler to a file; yields (logger, handler,
    a function returning what has reached the file so far)."""
    path = tmp_path / "log"
    stream = open(path, "w", buffering=1)  # line-buffered: every line its own write unless batched
    handler = BatchingStreamHandler(stream, interval=0.2)
    logger = logging.Logger("batch-test")
    logger.addHandler(handler)
    yield logger, handler, path.read_text
    handler.stop_batching()
    stream.close()


def test_until_batching_starts_every_line_is_written_at_once(log):
    logger, _, written = log
    logger.info("one")
    assert written() == "one\n"


def test_a_batching_handler_writes_info_lines_in_one_go_within_its_interval(log):
    logger, handler, written = log
    handler.start_batching()
    for n in range(50):
        logger.info("line %d", n)
    assert written() == "", "a line per write: the stock StreamHandler's behaviour"
    assert poll(lambda: written().count("\n") == 50, 5), written()


def test_a_warning_is_written_at_once_behind_the_lines_before_it(log):
    logger, handler, written = log
    handler.start_batching()
    logger.info("request")
    logger.warning("auth service call failed")
    assert written() == "request\nauth service call failed\n"


def test_stopping_writes_what_is_buffered_and_ends_the_thread(log):
    logger, handler, written = log
    before = set(threading.enumerate())
    handler.start_batching()
    [flusher] = set(threading.enumerate()) - before
    logger.info("last request")
    handler.stop_batching()
    assert written() == "last request\n" and not flusher.is_alive()
    logger.info("after")  # unbatched again
    assert written() == "last request\nafter\n"


def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path):
    path = tmp_path / "log"
    with open(path, "w", buffering=1) as stream:
        handler = BatchingStreamHandler(stream, interval=60, max_bytes=100)
        logger = logging.Logger("batch-test")
        logger.addHandler(handler)
        handler.start_batching()
        try:
            for _ in range(9):
                logger.info("x" * 9)  # 10 bytes a line
            assert path.read_text() == ""
            logger.info("x" * 9)
            assert path.read_text() == ("x" * 9 + "\n") * 10
        finally:
            handler.stop_batching()
