"""The `skaffold verify -p ci` smoke check: GET /hello and POST /jobs (valid and unknown token)
answer as the contract says. Runs in the cluster with the app-a image's python, stdlib only:

    python3 smoke_check.py http://app-a.app-ab.svc:5000

Prints one line per check; exits 1 if any check got another answer.
"""
import sys
import time
import urllib.error
import urllib.request

CONNECT_TRIES = 15  # a new pod's NetworkPolicy rules are programmed moments after it starts


def status(base, path, token=None):
    """The HTTP status `path` answers, or "unreachable: <reason>" after CONNECT_TRIES tries."""
    headers = {"Authorization": token} if token else {}
    request = urllib.request.Request(base + path, method="POST" if token else "GET", headers=headers)
    for _ in range(CONNECT_TRIES):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError as error:
            reason = f"unreachable: {error.reason}"
            time.sleep(1)  # pause between connection attempts
    return reason


def main(base):
    checks = {"GET /hello": (status(base, "/hello"), 200),
              "POST /jobs valid token": (status(base, "/jobs", "mytoken"), 200),
              "POST /jobs unknown token": (status(base, "/jobs", "not-a-token"), 401)}
    for name, (got, want) in checks.items():
        print(f"{name}: {got} (want {want})")
    return 0 if all(got == want for got, want in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/")))
