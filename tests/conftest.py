"""Shared fixtures: the repo root, the installed `tierscale` command, a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIERSCALE = str(Path(sys.executable).parent / "tierscale")


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([TIERSCALE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli():
    return run_cli
