"""`tierscale render` ends cleanly: no traceback, no "Exception ignored" at interpreter exit.

The stray `Exception ignored ... ValueError: Invalid file descriptor: -1` came from event loops
nobody closed (see components/render/mock_runtime.py); which one the garbage collector
finalized first decided whether it printed. With ResourceWarning turned into an error, an
unclosed loop or socket always prints "Exception ignored", so this test does not depend on
that luck.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO, TIERSCALE
from tests.support.stacks import EXAMPLE_STACKS


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_render_exits_without_stray_exceptions(stack, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="error::ResourceWarning")
    proc = subprocess.run([TIERSCALE, "render", "--stack", stack, "--out", str(tmp_path / stack)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for needle in ("Traceback", "Exception ignored", "ResourceWarning", "Invalid file descriptor"):
        assert needle not in proc.stderr, proc.stderr
