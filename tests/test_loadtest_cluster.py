"""How scripts/loadtest_cluster.py reads the master Job's state, against a scripted kubectl."""
import json

import loadtest_cluster


class ScriptedKubectl:
    """Answers `get job` and `get pods` from a list of (job conditions, waiting reason) states,
    one state per poll, the last one repeated."""

    def __init__(self, *states):
        self.states, self.polls = list(states), 0

    def __call__(self, verb, kind, *args):
        state = self.states[min(self.polls, len(self.states) - 1)]
        conditions, reason = state
        if kind == "job":
            return json.dumps({"status": {"conditions": conditions}})
        self.polls += 1
        waiting = {"reason": reason, "message": "failed to sync configmap cache"} if reason else {}
        return json.dumps({"items": [{"status": {"containerStatuses": [{"state": {"waiting": waiting}}]}}]})


RUNNING = ([], None)
CONFIG_NOT_SYNCED = ([], "CreateContainerConfigError")
COMPLETE = ([{"type": "Complete", "status": "True"}], None)


def test_a_config_error_that_clears_is_waited_out():
    kubectl = ScriptedKubectl(CONFIG_NOT_SYNCED, CONFIG_NOT_SYNCED, RUNNING, COMPLETE)
    assert loadtest_cluster.wait_for(kubectl, timeout=10, interval=0) == "complete"


def test_a_config_error_that_stays_means_the_job_cannot_start():
    kubectl = ScriptedKubectl(RUNNING, CONFIG_NOT_SYNCED)
    outcome = loadtest_cluster.wait_for(kubectl, timeout=10, interval=0.01, stuck_seconds=0.1)
    assert outcome.startswith("cannot start: CreateContainerConfigError: failed to sync")
