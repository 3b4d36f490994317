"""Shared fixtures: the repo root, the installed `tierscale` command, a CLI runner, and the
markers for slow and live-engine tests.

`tierscale validate` runs every rendered `vllm serve` argument list through the real vLLM
(components/validate/vllm_parser.py: one vLLM process, 15-40 s). The suite validates many
stacks, so it turns that one validator off for everything it starts
(TIERSCALE_VLLM_ARG_CHECK=0, inherited by the CLI subprocesses) and tests/serving/
test_vllm_parser.py runs it on every example stack in one vLLM process instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIERSCALE = str(Path(sys.executable).parent / "tierscale")

os.environ.setdefault("TIERSCALE_VLLM_ARG_CHECK", "0")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~10 s (real processes, real engines)")
    config.addinivalue_line("markers", "live_vllm: starts or uses the real vLLM (CPU build in .venv-vllm, "
                                       "tests/support/real_vllm.py)")


# `make test` runs the suite on two pytest-xdist workers (--dist loadgroup): much of its wall
# time is waiting (migration holds, fault timers, engine and container start-up, apt on the test
# hosts), which the other worker fills. Tests that share one machine-wide resource run in one
# group, on one worker, in collection order: the bare-metal hosts (fixed apt-proxy port, the
# debootstrap cache), the shared real-vLLM pool (one set of engines, 1.5 GB each), the
# Compose project under podman (host ports 8000/9090).
XDIST_GROUPS = {
    "tests/baremetal/test_converge.py": "baremetal-hosts",
    "tests/live/": "vllm",
    "tests/small/test_compose_podman.py": "podman",
}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Put each grouped test in its xdist group. xdist 3.8.0 marks a group by appending
    `@<group>` to `item._nodeid` (xdist/remote.py, WorkerInteractor.pytest_collection_modifyitems),
    but pytest 9 keeps the node id in `item._id` (_pytest/nodes.py, Node.nodeid), so the suffix
    never reaches the scheduler; set it where pytest 9 reads it."""
    from _pytest.nodeid import coerce_node_id

    loadgroup = config.getvalue("loadgroup") if hasattr(config.option, "loadgroup") else False
    for item in items:
        path = Path(str(item.fspath)).relative_to(REPO).as_posix()
        group = next((g for prefix, g in XDIST_GROUPS.items() if path.startswith(prefix)), None)
        if group is None:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        if loadgroup and not item.nodeid.endswith(f"@{group}"):
            item._id = coerce_node_id(f"{item.nodeid}@{group}")


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([TIERSCALE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli():
    return run_cli
