"""`--json` on plan, bench, migrate run, up and down (issue #23 item 2): a flag that prints one JSON
object on stdout and nothing else there; the human output goes to stderr; the exit code is unchanged.
Every run is in process (components.cli:main); the parts that would start servers (bench's Locust
engine, the migration runner, the local vLLM stack) are replaced by fakes, so what is checked is the
command's own contract, not the load generator."""

from __future__ import annotations

import json
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from components import paths
from tests.cli.conftest import one_json_document

# --- plan ---------------------------------------------------------------------------------------


def test_plan_stack_json_is_one_object_with_the_models(tierscale):
    proc = tierscale("plan", "--stack", "small-dev", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)  # fails on the list plan --stack --json printed before
    assert doc["stack"] == "small-dev" and doc["tier"] == "small" and isinstance(doc["qps"], (int, float))
    assert doc["models"] and {"model", "configured", "optimum", "warnings", "findings", "meets_slo"} <= set(doc["models"][0])
    assert isinstance(doc["tier_holds"], bool) and doc["recommended_tier"] in ("small", "medium", "large")


def test_plan_stack_takes_a_stack_file(tierscale, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.small-dev.yaml", tmp_path / "Pulumi.copy.yaml")
    proc = tierscale("plan", "--stack", str(tmp_path / "Pulumi.copy.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert one_json_document(proc)["stack"] == "copy"
    bad = tierscale("plan", "--stack", str(tmp_path / "copy.yaml"), "--json")
    assert bad.returncode == 2 and bad.stdout == "" and "--stack" in bad.stderr


def test_plan_unknown_stack_under_json_leaves_stdout_empty(tierscale):
    proc = tierscale("plan", "--stack", "small-dve", "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "--stack" in proc.stderr


# --- bench --------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    start: float
    ok: bool = True
    error: Optional[str] = None
    ttft: Optional[float] = 0.05
    e2e: Optional[float] = 0.2
    itl: list = field(default_factory=lambda: [0.05, 0.05, 0.05])
    output_tokens: int = 4
    prompt_tokens: Optional[int] = 16
    usage_reported: bool = True

    @property
    def tpot(self):
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


@pytest.fixture
def engine(monkeypatch):
    """components.bench.client without Locust/gevent (which would monkey-patch this test process):
    each request takes 200 ms, TTFT 50 ms; `calls` records each run's endpoint and model."""
    import components.bench as bench_pkg

    calls: list[dict] = []

    @dataclass(frozen=True)
    class Endpoint:
        base_url: str
        model: str
        api_key: Optional[str] = None
        insecure: bool = False
        timeout_s: float = 300.0

        @staticmethod
        def normalize(url: str) -> str:
            url = url.rstrip("/")
            return url[: -len("/v1")] if url.endswith("/v1") else url

    class Client:
        def __init__(self, endpoint, pool_size):
            self.endpoint = endpoint

    @dataclass
    class Progress:
        started: float
        done: int = 0
        errors: int = 0
        in_flight: int = 0
        phase: str = "measuring"
        elapsed: float = 1.0

    @dataclass
    class RunResult:
        outcomes: list
        wall_s: float
        stopped: Optional[str] = None
        warmup_errors: int = 0

    def run(client, dataset, *, requests=None, on_progress=None, **kw):
        calls.append({"endpoint": client.endpoint.base_url, "model": client.endpoint.model, "rate": kw.get("rate")})
        if on_progress:
            on_progress(Progress(started=0.0, done=1))
        n = requests or 10
        return RunResult([_Outcome(start=i * 0.1) for i in range(n)], wall_s=n * 0.1)

    fake = types.SimpleNamespace(Endpoint=Endpoint, Client=Client, Progress=Progress, RunResult=RunResult, run=run,
                                 calls=calls)
    monkeypatch.setitem(sys.modules, "components.bench.client", fake)
    monkeypatch.setattr(bench_pkg, "client", fake, raising=False)
    return fake


BENCH = ("bench", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--requests", "10", "--prompt-tokens", "16",
         "--output-tokens", "4")


def test_bench_json_is_a_flag_printing_the_report_object(tierscale, engine, tmp_path):
    out = tmp_path / "report.json"
    proc = tierscale(*BENCH, "--ttft-p99-ms", "1000", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert doc["requests"] == 10 and doc["completed"] == 10 and doc["pass"] is True and doc["model"] == "m"
    assert doc == json.loads(out.read_text())  # --out writes the same document
    assert "latency" in proc.stderr and "all SLO gates hold" in proc.stderr  # the tables went to stderr


def test_bench_json_with_a_failed_gate_exits_1_with_the_document(tierscale, engine):
    proc = tierscale(*BENCH, "--ttft-p99-ms", "10", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = one_json_document(proc)
    assert doc["pass"] is False and doc["slo"]["ttft_p99_ms"]["pass"] is False


def test_bench_without_json_prints_text(tierscale, engine):
    proc = tierscale(*BENCH)
    assert proc.returncode == 0, proc.stderr
    assert "all SLO gates hold" in proc.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


@pytest.mark.parametrize("spelling", [("--json", "{path}"), ("--json={path}",)])
def test_bench_json_path_still_writes_the_file_with_a_deprecation_warning(tierscale, engine, tmp_path, spelling):
    out = tmp_path / "old.json"
    proc = tierscale(*BENCH, *(s.format(path=out) for s in spelling))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["requests"] == 10
    assert "deprecated" in proc.stderr and f"--out {out}" in proc.stderr
    assert "all SLO gates hold" in proc.stdout  # the old form keeps its old text output


def test_bench_stack_takes_a_stack_file(tierscale, engine, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.small-dev.yaml", tmp_path / "Pulumi.bench-me.yaml")
    proc = tierscale("bench", "--stack", str(tmp_path / "Pulumi.bench-me.yaml"), "--requests", "5", "--json",
                     "--ttft-p99-ms", "1000", "--tpot-p99-ms", "1000")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert doc["requests"] == 5 and engine.calls and doc["model"] == engine.calls[0]["model"]
    bad = tierscale("bench", "--stack", str(tmp_path / "bench-me.yaml"), "--json")
    assert bad.returncode == 2 and bad.stdout == "" and "--stack" in bad.stderr


def test_bench_invalid_input_under_json_leaves_stdout_empty(tierscale, engine):
    proc = tierscale(*BENCH, "--rate", "-1", "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "--rate" in proc.stderr


# --- migrate run --------------------------------------------------------------------------------


@pytest.fixture
def fake_run(monkeypatch, tmp_path):
    """The migration runner replaced by one that journals a completed two-step run."""
    import components.migration.runner as runner_mod

    monkeypatch.setenv("TIERSCALE_STATE_DIR", str(tmp_path / "state"))

    class Run:
        def __init__(self, journal, driver, make_traffic, prometheus, config, say):
            self.journal, self.say = journal, say

        def run(self, plan_json, resume):
            self.journal.append("start", plan=plan_json, hold_scale=1.0, eval_interval_s=1.0)
            for step, percent in enumerate((50, 100)):
                self.journal.append("weight", step=step, percent=percent, hold_s=0, read_back=percent)
                self.journal.append("step_done", step=step, percent=percent)
            self.journal.append("done", result="completed")
            self.say("completed")
            return 0

    monkeypatch.setattr(runner_mod, "MigrationRun", Run)
    monkeypatch.setattr(runner_mod, "install_interrupt_handler", lambda journal, say: None)
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text("kind: nginx\n")
    return traffic


def test_migrate_run_json_prints_the_outcome(tierscale, fake_run, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.medium-prod.yaml", tmp_path / "Pulumi.next.yaml")
    journal = tmp_path / "j.jsonl"
    proc = tierscale("migrate", "run", "--from", "stacks/Pulumi.small-dev.yaml", "--to", str(tmp_path / "Pulumi.next.yaml"),
                     "--traffic", str(fake_run), "--driver", "local-stubs", "--driver-dir", str(tmp_path / "stubs"),
                     "--journal", str(journal), "--accept", "removed-model", "--accept", "capacity", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert (doc["source"], doc["destination"], doc["result"], doc["exit_code"]) == ("small-dev", "next", "completed", 0)
    assert doc["steps_done"] == [0, 1] and doc["destination_percent"] == 100 and doc["journal"] == str(journal)
    assert "completed" in proc.stderr and "journal:" in proc.stderr  # the progress went to stderr


def test_migrate_run_invalid_input_under_json_leaves_stdout_empty(tierscale, fake_run, tmp_path):
    proc = tierscale("migrate", "run", "--from", "small-dev", "--to", str(tmp_path / "next.yaml"),
                     "--traffic", str(fake_run), "--journal", str(tmp_path / "j.jsonl"), "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "--to" in proc.stderr


# --- up / down ----------------------------------------------------------------------------------


def test_down_json_when_nothing_runs(tierscale, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.local-demo.yaml", tmp_path / "Pulumi.hc-nothing-here.yaml")
    proc = tierscale("down", "--local", "--stack", str(tmp_path / "Pulumi.hc-nothing-here.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert one_json_document(proc) == {"stack": "hc-nothing-here", "was_running": False, "stopped_groups": [],
                                       "killed": []}


def test_up_json_prints_where_it_runs(tierscale, monkeypatch, tmp_path):
    import components.local.runner as local

    class Stack:
        def __init__(self, name, stacks_dir, say, **kw):
            from components.spec.stack_file import load_stack

            self.stack, self.say = load_stack(name, stacks_dir), say
            self.url, self.workdir, self.generated_key = "http://127.0.0.1:18080", tmp_path / "w", True
            self.replica_procs, self.prometheus, self.first_reply = [object()], None, "hi"
            self.name = name

        def up(self, ready_timeout_s=None):
            self.say("starting ...")
            return {"first_completion": 1.0, "replicas": 0.5}

        def banner(self):
            return f"tierscale {self.name} is up"

    monkeypatch.setattr(local, "LocalStack", Stack)
    import signal

    handler = signal.getsignal(signal.SIGTERM)  # `up` installs its own; this process keeps pytest's
    try:
        proc = tierscale("up", "--local", "--detach", "--stack", "stacks/Pulumi.local-demo.yaml", "--json")
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert doc["stack"] == "local-demo" and doc["base_url"] == "http://127.0.0.1:18080/v1" and doc["detached"] is True
    assert doc["api_key_file"] == str(tmp_path / "w" / "api-key") and doc["models"]
    assert doc["stop"] == ["tierscale", "down", "--local", "--stack", "local-demo"]
    assert "is up" in proc.stderr and "starting" in proc.stderr


def test_up_without_local_under_json_leaves_stdout_empty(tierscale):
    proc = tierscale("up", "--json")
    assert proc.returncode == 2 and proc.stdout == ""


# --- --stack everywhere -----------------------------------------------------------------------


def _stack_commands():
    from tests.cli.conftest import command_paths

    for path, cmd in command_paths():
        if any("--stack" in getattr(p, "opts", []) for p in cmd.params):
            yield pytest.param(path, id=" ".join(path))


@pytest.mark.parametrize("path", list(_stack_commands()))
def test_every_stack_option_takes_a_file_and_refuses_other_files(tierscale, tmp_path, path):
    """The shared `--stack NAME|FILE` on every command that has one: a file not named
    Pulumi.<name>.yaml is refused naming --stack (exit 2, stdout empty even under --json)."""
    assert len(list(_stack_commands())) >= 8  # render validate inventory plan bench migrate-check up down
    (tmp_path / "stack.yaml").write_text("config: {}\n")
    local = ("--local",) if path in (("up",), ("down",)) else ()
    proc = tierscale(*path, *local, "--stack", str(tmp_path / "stack.yaml"), "--json")
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    assert "--stack" in proc.stderr and "Pulumi.<name>.yaml" in proc.stderr, proc.stderr


# --- help ---------------------------------------------------------------------------------------


def test_top_level_help_names_every_command(tierscale):
    from tests.cli.conftest import command_paths

    names = {path[0] for path, _ in command_paths()}
    assert {"bench", "migrate", "up", "down", "plan"} <= names
    proc = tierscale("--help")
    assert proc.returncode == 0
    first_line = proc.stdout.split("Usage:")[1].split("╭")[0]
    for name in names:
        assert f" {name}" in first_line.replace(",", " ").replace("(", " "), f"the top-level help text omits {name}"
    import components.cli as cli

    summary = cli.__doc__.split("\n\n")[0]
    assert all(name in summary for name in names), "components/cli.py's docstring omits a command"


def test_one_error_map():
    import components.cli as cli

    assert not hasattr(cli, "_fail_spec") and not hasattr(cli, "_print_findings")
