"""The README's two commands are sized to their task (issue #23): `make preview` installs only
what render/validate run; `make test` installs everything the suite runs. Read from make's own
dry run (`make -n`, which also dry-runs the recursive makes), so the check follows the Makefile."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = ("podman", "redis-server", "debootstrap", "systemd-container", ".venv-litellm", ".venv-docs")


def _dry_run(*targets: str) -> str:
    # -B: every target counts as out of date, so each install step shows.
    run = subprocess.run(["make", "-n", "-B", *targets], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_preview_installs_only_what_validate_runs():
    steps = _dry_run("preview", "STACK=small-dev")
    assert "tierscale validate --stack small-dev" in steps
    for needed in ("nginx-light", "prometheus", ".venv-checkov", ".venv-vllm"):
        assert needed in steps, needed
    assert not [t for t in TEST_ONLY if t in steps]


def test_test_installs_everything_and_prints_progress():
    steps = _dry_run("test")
    assert all(t in steps for t in TEST_ONLY)
    assert steps.count("==>") >= 5
