"""Every migration test gets its own state directory for the stack locks (TIERSCALE_STATE_DIR),
inherited by the CLI subprocesses it starts: tests never contend with each other or with a
real run on this machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TIERSCALE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
