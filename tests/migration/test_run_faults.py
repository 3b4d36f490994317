"""`migrate run` under faults, in-process (a scripted Prometheus; a real nginx where the reload
and its read-back are the point): a reload that fails during the rollback, a torn / edited /
foreign / deleted journal line, two runs on the same stacks with different journals, and
`--resume` after a rollback. Each of these let the journal and the live split disagree before
(issue #18 item 3)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from components.cli import app
from components.migration import traffic as t
from components.migration.journal import Journal, JournalCorrupt, RunState, StackLocked, StackLocks
from components.migration.runner import EXIT_ROLLBACK_FAILED, EXIT_ROLLED_BACK, MigrationRun, RunConfig
from tests.migration.fakes import FakeDriver, FakeTraffic, scripted_prom, short_plan
from tests.support.processes import free_port, wait_http
from tests.support.stacks import small_stack

FAST = RunConfig(eval_interval_s=0.01, hold_scale=0.01, rollback_attempts=3, rollback_backoff_s=0.01)


def _runner(journal_path: Path, traffic, prom, log: list, config: RunConfig = FAST) -> MigrationRun:
    return MigrationRun(Journal(journal_path), FakeDriver(log), lambda outputs, fallback=False: traffic, prom, config,
                        say=lambda s: log.append(("say", s)), warn=lambda s: log.append(("warn", s)))


def _events(path: Path) -> list[str]:
    return [r["event"] for r in Journal(path).records()]


# -- a real nginx whose reload fails at the rollback -----------------------------------------

class StatusOnlySplit(t.NginxSplit):
    """NginxSplit's own write / `nginx -t` / reload / confirm / read-back, on a config that is
    only the status listener: what the test exercises is the reload and the read-back, not the
    gateway template (tests/migration/test_run.py covers that)."""

    def render_conf(self, percent: int, revision: int = 0) -> str:
        d = self.conf.parent
        traffic = json.dumps({"percent": percent, "revision": revision, "fallback": self.fallback_active},
                             separators=(",", ":"))
        temps = "\n".join(f"    {k}_temp_path {d}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n{temps}\n"
                f"    server {{\n        listen {self.render['status_listen']};\n"
                f"        location = /gateway/traffic {{ default_type application/json; return 200 '{traffic}'; }}\n"
                "    }\n}\n")


@pytest.fixture
def nginx_split(tmp_path):
    d = tmp_path / "gw"
    (d / "tmp").mkdir(parents=True)
    status = f"127.0.0.1:{free_port()}"
    split = StatusOnlySplit("small-dev", small_stack(), d / "nginx.conf",
                            {"llama-8b": ["127.0.0.1:9001"]}, {"llama-8b": ["127.0.0.1:9101"]},
                            {"status_listen": status, "log_dir": str(d)}, f"http://{status}/gateway/traffic")
    split.conf.write_text(split.render_conf(0))
    extra = "daemon on;" + (" user root;" if os.geteuid() == 0 else "")
    subprocess.run(["nginx", "-p", str(d), "-c", str(split.conf), "-e", str(d / "error.log"), "-g", extra], check=True)
    wait_http(split.status_url)
    yield split
    subprocess.run(["nginx", "-p", str(d), "-c", str(split.conf), "-e", str(d / "error.log"), "-s", "stop"])


FAILING_RELOAD = ["sh", "-c", "echo 'nginx: [alert] kill(4242, 1) failed (1: Operation not permitted)' >&2; exit 1"]


def test_reload_failure_at_rollback_is_retried_reported_and_resumed_as_a_rollback(tmp_path, nginx_split):
    split = nginx_split
    journal = tmp_path / "j.jsonl"
    plan = short_plan()
    prom = scripted_prom(plan, {})
    # TTFT breaks the SLO while the live split is 50%; from then on every reload fails.
    ttft = next(g for g in prom.gates.values() if g.name == "ttft_p99_seconds")
    live_query = prom.query

    def query(expr):
        if expr == ttft.promql and split.read_weight() == 50:
            split.reload = FAILING_RELOAD
            return 9.0
        return live_query(expr)

    prom.query = query
    log: list = []
    code = _runner(journal, split, prom, log).run(plan, resume=False)
    warnings = [s for kind, s in log if kind == "warn"]
    assert code == EXIT_ROLLBACK_FAILED == 3, "\n".join(map(str, log))
    assert any("ROLLBACK FAILED after 3 attempts: the destination small-next still has 50% of traffic" in w
               for w in warnings), warnings
    assert any("kill(4242, 1) failed" in w for w in warnings)
    records = Journal(journal).records()
    events = [r["event"] for r in records]
    assert events[-5:] == ["rollback", "rollback_attempt", "rollback_attempt", "rollback_attempt", "rollback_failed"]
    assert "done" not in events
    assert all(r["read_back"] == 50 and not r["ok"] for r in records if r["event"] == "rollback_attempt")
    assert records[-1]["live_percent"] == 50
    # The journal says what nginx serves: 50% is still live.
    assert httpx.get(split.status_url).json()["percent"] == 50

    # The reload works again: --resume repeats the rollback only, verified by the read-back.
    split.reload = None
    before = len(records)
    code = _runner(journal, split, scripted_prom(plan, {}), log).run(None, resume=True)
    assert code == EXIT_ROLLED_BACK
    after = Journal(journal).records()[before:]
    assert [r["event"] for r in after] == ["rollback_attempt", "rollback_verified", "done"]
    assert after[0]["read_back"] == 0 and after[-1]["result"] == "rolled_back"
    assert httpx.get(split.status_url).json()["percent"] == 0


def test_a_weight_that_does_not_read_back_rolls_back(tmp_path):
    class Stuck(FakeTraffic):
        def set_weight(self, percent):
            self.log.append(("weight", percent))
            self.live = 0 if percent == 0 else 5  # the 20% step never takes

    log: list = []
    plan = short_plan()
    code = _runner(tmp_path / "j.jsonl", Stuck(log), scripted_prom(plan, {}), log).run(plan, resume=False)
    assert code == EXIT_ROLLED_BACK
    records = Journal(tmp_path / "j.jsonl").records()
    rollback = next(r for r in records if r["event"] == "rollback")
    assert rollback["percent"] == 20 and "the back end reports 5% in force" in rollback["reason"]
    assert [r["event"] for r in records][-2:] == ["rollback_verified", "done"]


def test_a_back_end_without_read_back_is_rolled_back_unverified_and_says_so(tmp_path):
    class Blind(FakeTraffic):
        read_weight = property(lambda self: (_ for _ in ()).throw(AttributeError))

    log: list = []
    plan = short_plan()
    code = _runner(tmp_path / "j.jsonl", Blind(log), scripted_prom(plan, {"ttft_p99_seconds": [0.1] * 6 + [9.0]}),
                   log).run(plan, resume=False)
    assert code == EXIT_ROLLED_BACK
    assert _events(tmp_path / "j.jsonl")[-2:] == ["rollback_unverified", "done"]
    assert any("NOT verified" in s for kind, s in log if kind == "warn")


# -- the journal -----------------------------------------------------------------------------

@pytest.fixture
def rolled_back(tmp_path) -> Path:
    """The journal of a run that rolled back at 20% (read back 0)."""
    log: list = []
    plan = short_plan()
    path = tmp_path / "j.jsonl"
    code = _runner(path, FakeTraffic(log), scripted_prom(plan, {"ttft_p99_seconds": [0.1] * 6 + [9.0]}),
                   log).run(plan, resume=False)
    assert code == EXIT_ROLLED_BACK
    assert _events(path)[-4:] == ["rollback", "rollback_attempt", "rollback_verified", "done"]
    return path


def _line_of(path: Path, event: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if json.loads(line)["event"] == event)


def test_a_torn_line_is_refused_and_resume_never_reapplies_steps(rolled_back):
    n = _line_of(rolled_back, "rollback")
    lines = rolled_back.read_text().splitlines(keepends=True)
    lines[n - 1] = lines[n - 1][: len(lines[n - 1]) // 2] + "\n"  # torn in place, later lines intact
    rolled_back.write_text("".join(lines))
    with pytest.raises(JournalCorrupt) as e:
        Journal(rolled_back).records()
    assert e.value.line == n and "torn" in e.value.why
    log: list = []
    with pytest.raises(JournalCorrupt):
        _runner(rolled_back, FakeTraffic(log, live=0), scripted_prom(short_plan(), {}), log).run(None, resume=True)
    assert [e for e in log if e[0] == "weight"] == []  # nothing applied


@pytest.mark.parametrize("fault", ["edited", "foreign", "deleted", "reordered", "old-format"])
def test_an_edited_foreign_or_missing_line_is_refused_naming_it(rolled_back, tmp_path, fault):
    lines = rolled_back.read_text().splitlines(keepends=True)
    n = _line_of(rolled_back, "rollback")
    if fault == "edited":  # someone "fixes" the journal by hand
        lines[n - 1] = lines[n - 1].replace('"event":"rollback"', '"event":"step_done"')
        expect = "checksum mismatch"
    elif fault == "foreign":  # a line from another run's journal, sealed and valid on its own
        other = Journal(tmp_path / "other.jsonl")
        for _ in range(n):
            other.append("gates", step=0)
        lines[n - 1] = (tmp_path / "other.jsonl").read_text().splitlines(keepends=True)[-1]
        expect = "does not follow the line before it"
    elif fault == "deleted":
        del lines[n - 1]
        expect = f"sequence {n} where {n - 1} belongs"
    elif fault == "reordered":
        lines[n - 1], lines[n] = lines[n], lines[n - 1]
        expect = "sequence"
    else:
        lines[n - 1] = json.dumps({"event": "step_done", "step": 1}) + "\n"
        expect = "not a version-2 tierscale journal record"
    rolled_back.write_text("".join(lines))
    with pytest.raises(JournalCorrupt) as e:
        Journal(rolled_back).records()
    assert e.value.line == n and expect in e.value.why, e.value


def test_resume_after_a_recorded_rollback_only_rolls_back(tmp_path):
    """Killed between the rollback decision and its read-back: resume sets 0, verifies, ends."""
    log: list = []
    plan = short_plan()
    path = tmp_path / "j.jsonl"
    _runner(path, FakeTraffic(log), scripted_prom(plan, {"ttft_p99_seconds": [0.1] * 6 + [9.0]}), log).run(plan, False)
    records = Journal(path).records()
    cut = next(i for i, r in enumerate(records) if r["event"] == "rollback") + 1
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:cut]))  # the kill came here
    assert RunState.read(Journal(path).records()).rollback is not None
    traffic = FakeTraffic(log := [], live=20)  # nginx still serves the step's 20%
    code = _runner(path, traffic, scripted_prom(plan, {}), log).run(None, resume=True)
    assert code == EXIT_ROLLED_BACK and traffic.live == 0
    assert [e for e in log if e[0] == "weight"] == [("weight", 0)]
    assert _events(path)[cut:] == ["rollback_attempt", "rollback_verified", "done"]


def test_a_resumed_rolled_back_run_stays_rolled_back(rolled_back):
    log: list = []
    code = _runner(rolled_back, FakeTraffic(log), scripted_prom(short_plan(), {}), log).run(None, resume=True)
    assert code == EXIT_ROLLED_BACK and [e for e in log if e[0] == "weight"] == []


# -- one lock per stack ----------------------------------------------------------------------

def test_stack_locks_hold_across_journals_and_name_the_holder(tmp_path):
    first = StackLocks(("small-dev", "medium-prod"), tmp_path / "a.jsonl", tmp_path / "locks")
    first.acquire(("small-dev", "medium-prod"))
    try:
        for pair in (("small-dev", "medium-prod"), ("small-dev", "medium-eks"), ("medium-eks", "medium-prod")):
            other = StackLocks(pair, tmp_path / "b.jsonl", tmp_path / "locks")
            with pytest.raises(StackLocked) as e:
                other.acquire(pair)
            assert f"pid {os.getpid()}, journal {tmp_path / 'a.jsonl'}, small-dev -> medium-prod" in str(e.value)
        free = StackLocks(("medium-eks", "medium-405b"), tmp_path / "c.jsonl", tmp_path / "locks")
        free.acquire(("medium-eks", "medium-405b"))
        free.release()
    finally:
        first.release()
    again = StackLocks(("small-dev", "medium-prod"), tmp_path / "b.jsonl", tmp_path / "locks")
    again.acquire(("small-dev", "medium-prod"))
    again.release()


def _cli(*args: str) -> "object":
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_second_run_on_the_same_stacks_with_another_journal_exits_2_naming_the_holder(tmp_path):
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({"kind": "route53"}))
    holder = StackLocks(("small-dev", "medium-prod"), tmp_path / "first.jsonl")  # TIERSCALE_STATE_DIR (conftest)
    holder.acquire(("small-dev", "medium-prod"))
    try:
        result = _cli("migrate", "run", "--from", "small-dev", "--to", "medium-prod", "--traffic", str(traffic),
                      "--journal", str(tmp_path / "second.jsonl"), "--accept", "removed-model")
    finally:
        holder.release()
    assert result.exit_code == 2, result.stderr
    assert "is in another `migrate run`" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert str(tmp_path / "first.jsonl") in result.stderr
    assert not (tmp_path / "second.jsonl").exists()  # nothing started


def test_cli_names_the_journal_file_and_line_of_a_torn_record(rolled_back, tmp_path):
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({"kind": "route53"}))
    with open(rolled_back, "ab") as f:
        f.write(b'{"v":2,"seq":99,"ev')
    n = len(rolled_back.read_text().splitlines())
    result = _cli("migrate", "run", "--from", "small-dev", "--to", "medium-prod", "--traffic", str(traffic),
                  "--journal", str(rolled_back), "--resume", "--accept", "removed-model")
    assert result.exit_code == 2, result.stderr
    assert f"error: journal {rolled_back}:{n}: torn" in result.stderr
    assert "Traceback" not in result.stderr
