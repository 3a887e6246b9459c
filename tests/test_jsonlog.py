"""The JSON log line format (servicekit/jsonlog.py)."""
import calendar
import json
import logging
import re
import sys

from servicekit.jsonlog import JsonFormatter

ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(msg="request", args=(), created=None, **extra):
    rec = logging.LogRecord("app_a", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    if created is not None:
        rec.created = created
    return rec


def test_a_line_has_the_fixed_fields_then_the_extra_ones_in_order():
    line = json.loads(JsonFormatter().format(record(
        "took %s", ("long",), request_id="r-1", status=200, duration_ms=1.5)))
    assert list(line) == ["time", "level", "logger", "message", "request_id", "status", "duration_ms"]
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "app_a", "took long")
    assert ISO_UTC_MS.fullmatch(line["time"])


def test_time_is_utc_to_the_millisecond_also_across_seconds():
    formatter = JsonFormatter()
    second = calendar.timegm((2026, 12, 1, 14, 32, 36))
    times = [json.loads(formatter.format(record(created=at)))["time"]
             for at in (second + 0.5, second + 0.75, second + 1.0, second + 0.125)]  # exact in binary
    assert times == ["2026-12-01T14:32:36.500Z", "2026-12-01T14:32:36.750Z",
                     "2026-12-01T14:32:37.000Z", "2026-12-01T14:32:36.125Z"]


def test_a_traceback_stays_inside_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("app_a", logging.ERROR, __file__, 1, "unhandled error", (),
                                sys.exc_info())
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    assert json.loads(text)["exc_info"].endswith("RuntimeError: boom")


def test_a_field_json_cannot_encode_is_logged_as_its_text():
    line = json.loads(JsonFormatter().format(record(peer=("127.0.0.1", 5000), path=b"/x", obj=object())))
    assert line["peer"] == ["127.0.0.1", 5000] and line["path"] == "b'/x'"
    assert line["obj"].startswith("<object object")


def test_a_line_is_compact_and_keeps_text_other_than_ascii_as_it_is():
    text = JsonFormatter().format(record(path="/café", status=404))
    assert text.endswith('"message":"request","path":"/café","status":404}')


def test_a_line_with_what_orjson_refuses_is_still_written_whole():
    # orjson refuses integers over 64 bits and lone surrogates: the standard library writes them.
    text = JsonFormatter().format(record(bytes_seen=2**70, token="\ud800x"))
    line = json.loads(text)
    assert (line["bytes_seen"], line["token"], line["message"]) == (2**70, "\ud800x", "request")
    assert text.isascii() and '"message":"request"' in text  # same separators as every line
