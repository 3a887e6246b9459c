"""A log handler that writes a worker's request lines in batches instead of one system call each.

A StreamHandler flushes after every record: one `write` system call per request line, made with
the GIL released. Once batching has started in a process, records below WARNING are kept by the
handler itself (the stream may be unbuffered: the images set PYTHONUNBUFFERED) and written in
one go when they reach `max_bytes`, a WARNING or worse arrives (written behind them), `interval`
seconds pass, or batching stops. What a batch risks is a SIGKILL: up to `interval` seconds of
INFO lines; a graceful exit writes them.
"""
import logging
import threading


class BatchingStreamHandler(logging.StreamHandler):
    """Writes and flushes every record, as a StreamHandler does, until `start_batching()`
    (gunicorn's workers call it once booted; the master, which forks, never starts a thread)."""

    def __init__(self, stream=None, interval=0.1, max_bytes=64 * 1024):
        super().__init__(stream)
        self.interval, self.max_bytes = interval, max_bytes
        self._pending, self._pending_bytes = [], 0
        self._flusher = None  # (thread, stop event) while batching

    def start_batching(self):
        if self._flusher is None:
            stop = threading.Event()
            thread = threading.Thread(target=self._flush_until, args=(stop,), name="log-flusher",
                                      daemon=True)
            self._flusher = (thread, stop)
            thread.start()

    def stop_batching(self):
        """Write what is kept and stop the thread (a daemon thread holding the stream's lock at
        interpreter exit would make the final flush fail)."""
        if self._flusher is not None:
            thread, stop = self._flusher
            self._flusher = None
            stop.set()
            thread.join()
        self.flush()

    def _flush_until(self, stop):
        while not stop.wait(self.interval):
            self.flush()

    def flush(self):
        with self.lock:
            if self._pending:
                self.stream.write("".join(self._pending))
                self._pending, self._pending_bytes = [], 0
            super().flush()

    def emit(self, record):
        if self._flusher is None or record.levelno >= logging.WARNING:
            self.flush()  # what is kept goes first
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.max_bytes:
            self.flush()


def batching_handlers():
    """The batching handlers the root logger writes to (gunicorn's own logger shares them)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, BatchingStreamHandler)]
