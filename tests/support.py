"""Helpers the repository-level suites import (conftest.py names are ambiguous in this repo:
each app's tests/ folder has one too)."""
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").lower() == "true"
# Lines a suite wants in the run's summary whether it passes or fails (conftest prints them).
REPORT = []


def require_tool(name):
    """Return the path of a command-line tool; skip on a laptop that lacks it, fail in CI.

    CI installs every tool itself, so a missing one there is a broken setup, not a reason to skip.
    Looks in the project's .bin (Go tools built by scripts/install-go-tools.sh) before PATH.
    """
    local = os.path.join(REPO, ".bin", name)
    path = local if os.access(local, os.X_OK) else shutil.which(name)
    if path:
        return path
    reason = f"{name} not found (run: make tools / scripts/ensure-docker.sh)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_checkout(dest):
    """Copy what a fresh clone plus the uncommitted work would hold: tracked and untracked files,
    minus what .gitignore excludes (virtualenvs, local databases, caches)."""
    listing = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True)
    for rel in filter(None, listing.stdout.decode().split("\0")):
        src = Path(REPO, rel)
        if src.is_file():  # a tracked file deleted in the working tree is not there
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest
