"""The `skaffold verify -p ci` smoke check: GET /hello and POST /jobs (valid and unknown token)
answer as the contract says. Runs in the cluster with the app-a image's python, stdlib only:

    python3 smoke_check.py http://app-a.app-ab.svc:5000

Prints one line per check; exits 1 if any check got another answer. One try each: the Job's pod
may reach app-a from its first packet on (overlays/ci's allow-smoke-check NetworkPolicy), so a
refused connection is a finding, not a delay to wait out.
"""
import sys
import urllib.error
import urllib.request


def status(base, path, token=None):
    """The HTTP status `path` answers, or "unreachable: <reason>"."""
    headers = {"Authorization": token} if token else {}
    request = urllib.request.Request(base + path, method="POST" if token else "GET", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError as error:
        return f"unreachable: {error.reason}"


def main(base):
    checks = {"GET /hello": (status(base, "/hello"), 200),
              "POST /jobs valid token": (status(base, "/jobs", "mytoken"), 200),
              "POST /jobs unknown token": (status(base, "/jobs", "not-a-token"), 401)}
    for name, (got, want) in checks.items():
        print(f"{name}: {got} (want {want})")
    return 0 if all(got == want for got, want in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/")))
