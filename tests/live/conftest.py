"""Live tests on the real vLLM engine (CPU build, .venv-vllm, tiny generated model).

Every test here is marked `slow` and `live_vllm`. The servers are shared by the whole session
(`vllm_pool`): a server starts the first time a test asks for it (15-65 s on 2 cores) and is
reused by every later test; a test that stops one (the drain test) gets it restarted for the
next user only if there is one. Tests that kill a server (`kills_server`) are ordered after all
the others, so no server is restarted mid-session. `-m "not live_vllm"` leaves them all out.
"""

from __future__ import annotations

import pytest

from tests.support.real_vllm import VllmServer, shared_servers


# Tests that SIGKILL or SIGTERM a shared server. The pool restarts a dead server for the next
# user (87 s on a busy 2-core machine), so these run after every other test of the session.
# A test says so with `@pytest.mark.kills_server`; the ones below are marked here as well
# (module path, test name) until their modules carry the marker themselves.
KILLS_SERVER = {
    ("tests/live/test_gateway_real.py", "test_sigkill_of_one_replica_under_load_fails_no_request_before_its_first_byte"),
    ("tests/live/test_vllm_engine.py", "test_sigterm_drains_in_flight_streams_and_refuses_new_requests"),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "kills_server: kills or SIGTERMs a shared real-vLLM server of the pool; "
                                       "runs after every other test (tests/live/conftest.py)")


def _kills_server(item) -> bool:
    path = str(item.fspath)
    return item.get_closest_marker("kills_server") is not None or any(
        path.endswith("/" + module) and item.originalname == name for module, name in KILLS_SERVER)


def _order(items) -> None:
    """Every kills_server test after every other test, in place; stable otherwise. Among them,
    those that need the pair (two servers) first: after one of the pair is killed, a test that
    needs one server still finds the survivor, while the reverse order would restart one.
    xdist (--dist loadgroup) keeps this order: a group runs on one worker in collection order."""
    killers = [i for i in items if _kills_server(i)]
    if not killers:
        return
    killers.sort(key=lambda i: "pair" not in getattr(i, "fixturenames", ()))
    rest = [i for i in items if not _kills_server(i)]
    items[:] = rest + killers


@pytest.hookimpl(trylast=True)  # after any other reordering (pytest's own by fixture scope included)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/live/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.live_vllm)
            if _kills_server(item):
                item.add_marker(pytest.mark.kills_server)
    _order(items)


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
