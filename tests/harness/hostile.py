"""Slow and hostile clients for the edge tests, and the normal client they must not starve.
Every socket goes to 127.0.0.1 (a local stack, or the kind port mapping onto the NodePort)."""
import socket
import threading
import time
from urllib.parse import urlsplit

import requests

# What each kind of socket sends first; "slow" kinds then trickle one byte a second.
OPENING = {
    # A header that never ends: the server waits for the rest of it.
    "slow-headers": b"POST /jobs HTTP/1.1\r\nHost: edge\r\nX-Slow: ",
    # Complete headers, then a 10000-byte body one byte at a time.
    "slow-body": (b"POST /jobs HTTP/1.1\r\nHost: edge\r\nAuthorization: mytoken\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: 10000\r\n\r\n"),
    # A whole request, and then the client never reads the answer.
    "held-close": b"POST /jobs HTTP/1.1\r\nHost: edge\r\nAuthorization: mytoken\r\nConnection: close\r\n\r\n",
}
KINDS = tuple(OPENING)
TRICKLE = {"slow-headers", "slow-body"}


class Hostile:
    """`count` sockets of one `kind` against `url`, opened on entry; a thread trickles a byte a
    second into the slow kinds until `stop_trickling` (or `max_seconds`), then they fall silent."""

    def __init__(self, url, kind, count=64, max_seconds=30):
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.kind, self.count, self.max_seconds = kind, count, max_seconds
        self.sockets = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self):
        # 100 sockets a second: what is under test is what a socket holds, not a burst of
        # complete requests larger than the service's capacity (that is shed by design, 503).
        for _ in range(self.count):
            sock = socket.create_connection(self.address, timeout=5)
            sock.sendall(OPENING[self.kind])
            self.sockets.append(sock)
            time.sleep(0.01)  # pacing the hostile client, not waiting for a server
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_trickling()
        for sock in self.sockets:
            sock.close()

    def _trickle(self):
        deadline = time.monotonic() + self.max_seconds
        while self.kind in TRICKLE and time.monotonic() < deadline and not self._stop.wait(1.0):
            for sock in self.sockets:
                try:
                    sock.send(b"a")
                except OSError:  # closed by the server: what the timeouts are for
                    pass

    def stop_trickling(self):
        self._stop.set()
        self._thread.join()

    def closed(self):
        """How many of the sockets the server has closed (read to EOF or reset)."""
        shut = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                while sock.recv(65536):  # an answer the server sent before closing: read past it
                    pass
                shut += 1
            except BlockingIOError:
                pass  # still open
            except OSError:  # reset
                shut += 1
        return shut


def normal_client(url, seconds, token="mytoken"):
    """Sequential POST /jobs for `seconds`: a list of (status or None, seconds taken)."""
    answers, deadline = [], time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = session.post(f"{url}/jobs", headers={"Authorization": token}, timeout=3).status_code
            except requests.RequestException:
                status = None
            answers.append((status, time.monotonic() - started))
    return answers


def p99(answers):
    times = sorted(seconds for _, seconds in answers)
    return times[min(len(times) - 1, int(len(times) * 0.99))]
