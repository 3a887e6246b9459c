"""The offline base-image builder (offline/debootstrap-image.sh) as scripts/docker-build.sh uses it."""
import os
import subprocess

from harness.docker import PREFIX
from harness.stack import REPO, missing, require_tool


def test_a_fresh_build_prints_only_the_image_name(engine):
    """docker-build.sh takes the base image's name from the builder's stdout. On a cold machine
    the PostgreSQL base's smoke command (`id postgres`) printed into it and the build failed;
    a warm machine skips the build and never showed it."""
    if os.geteuid() != 0:
        missing("building a base image needs root (debootstrap)")
    require_tool("debootstrap")
    tag = f"{PREFIX}-base-probe:test"  # a recipe of its own: always a fresh build
    try:
        build = subprocess.run(
            [str(REPO / "offline" / "debootstrap-image.sh"), "--tag", tag, "--packages", "tar",
             "--description", "stdout probe", "--smoke", "echo smoke output; tar --version"],
            capture_output=True, text=True, timeout=900)
        assert build.returncode == 0, build.stderr[-4000:]
        assert build.stdout == f"{tag}\n"
        assert "smoke output" in build.stderr
    finally:
        engine("image", "rm", tag, check=False)
