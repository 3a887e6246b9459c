"""The image's HEALTHCHECK (Docker's; Kubernetes uses its own probes): exit 0 when the service on
this container's PORT (default: the argument) answers GET /healthz with 200. No curl in the image.

    python3 -m servicekit.healthcheck 5000
"""
import os
import sys
import urllib.request


def main(default_port):
    url = f"http://127.0.0.1:{os.environ.get('PORT', default_port)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
