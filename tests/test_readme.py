"""README's local-stack commands, run exactly as written: `make run` in the background (as in
terminal 1), every other line of the "Local" section, and each `$ command` of the example session
with the output README shows. So the newcomer's first steps cannot silently rot."""
import os
import re
import signal
import subprocess

import pytest
import requests

from harness.stack import REPO, poll, require_tool

README = (REPO / "README.md").read_text()


def fenced(section, language):
    """The lines of the first ```language block under `## section`, comments stripped."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(rf"```{language}\n(.*?)```", body, re.S).group(1)
    return [line for line in (raw.split(" #", 1)[0].strip() for raw in block.splitlines()) if line]


def session():
    """(command, expected output) pairs of README's first ```console block."""
    block = re.search(r"```console\n(.*?)```", README, re.S).group(1)
    pairs = []
    for line in block.splitlines():
        if line.startswith("$ "):
            pairs.append([line[2:], []])
        else:
            pairs[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in pairs]


def answers():
    try:
        return all(requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                   for port in (5000, 5001))
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    commands = fenced("Local", "bash")
    assert commands[0] == "make run", commands
    if answers():
        pytest.fail("something already answers on 127.0.0.1:5000/5001", pytrace=False)
    log = tmp_path_factory.mktemp("make-run") / "output"
    with open(log, "w") as out:  # a file, not a pipe: nobody reads a pipe until the end
        proc = subprocess.Popen(["bash", "-c", commands[0]], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert poll(answers, 120, interval=0.2), "make run never served 127.0.0.1:5000 and :5001"
        yield commands[1:]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as README says
        proc.wait(60)
    output = log.read_text()
    # Ctrl-C ends make itself by the signal; the stack underneath stops both services cleanly.
    assert proc.returncode in (0, -signal.SIGINT), output[-3000:]
    assert output.count("Shutting down: Master") == 2 and "Traceback" not in output, output[-3000:]


def test_every_local_command_runs_as_written(make_run):
    require_tool("ab")
    for command in make_run:
        result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.mark.parametrize("command, expected", session())
def test_the_example_session_prints_what_readme_shows(make_run, command, expected):
    result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == expected.strip(), result.stdout
