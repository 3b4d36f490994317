"""Live tests on the real vLLM engine (CPU build, .venv-vllm, tiny generated model).

Every test here is marked `slow` and `live_vllm`. The servers are shared by the whole session
(`vllm_pool`): a server starts the first time a test asks for it (15-65 s on 2 cores) and is
reused by every later test; a test that stops one (the drain test) gets it restarted for the
next user only if there is one. `-m "not live_vllm"` leaves them all out.
"""

from __future__ import annotations

import pytest

from tests.support.real_vllm import VllmServer, shared_servers


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/live/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.live_vllm)


class VllmPool:
    """Real vLLM servers shared across the session; get(n) returns n running servers."""

    def __init__(self):
        self.servers: list[VllmServer] = []

    def get(self, n: int = 1) -> list[VllmServer]:
        self.servers = [s for s in self.servers if s.alive()]
        if len(self.servers) < n:
            self.servers += shared_servers(n - len(self.servers))
        return self.servers[:n]

    def close(self) -> None:
        # No drain at the end of the session (nothing is in flight; a SIGTERM'd vLLM takes
        # 15-20 s to exit even idle): kill each server's process group.
        for s in self.servers:
            s.kill()


@pytest.fixture(scope="session")
def vllm_pool():
    pool = VllmPool()
    yield pool
    pool.close()


@pytest.fixture
def real_vllm(vllm_pool) -> VllmServer:
    """One running real vLLM server, shared with every other test of the session."""
    server = vllm_pool.get(1)[0]
    print(f"\nreal vLLM on :{server.port}, ready {server.ready_after_s:.0f} s after start")
    return server
