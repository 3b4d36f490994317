"""The golden-set step of `migrate run` (runner.MigrationRun._golden) against two live stub
replicas (tests/support/openai_stub.py; `drift` via its control endpoint): before any weight
moves, the same prompts go to source and destination greedily; within the tolerance for the
quantization change the run goes on, outside it the run stops (exit 1) naming the prompts,
with the destination's weight never above 0. Prometheus, the driver and the traffic back end
are scripted, as in test_run.py."""

from __future__ import annotations

import copy
import os
import subprocess

import httpx
import pytest
import yaml

from components import paths
from components.migration import gates as gate_defs
from components.migration import runner as r
from components.migration.journal import Journal
from components.migration.plan import plan_migration
from components.spec.stack_file import load_stack
from tests.conftest import TIERSCALE
from tests.support.processes import start_stubs

SERVED = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def stubs():
    pair = start_stubs(2, ttft_ms=1, itl_ms=0, model=SERVED)
    yield pair
    for s in pair:
        s.kill()


def _drift(stub, share: float) -> None:
    httpx.post(f"http://{stub.address}/stub/control", json={"drift": share}, timeout=5).raise_for_status()


def _stacks(tmp_path, **model_changes):
    base = yaml.safe_load((paths.STACKS_DIR / "Pulumi.medium-prod.yaml").read_text())
    (tmp_path / "Pulumi.medium-prod.yaml").write_text(yaml.safe_dump(base))
    dst = copy.deepcopy(base)
    dst["config"]["tierscale:models"][1].update(model_changes or {"quantization": "fp8"})
    (tmp_path / "Pulumi.medium-next.yaml").write_text(yaml.safe_dump(dst))
    return load_stack("medium-prod", tmp_path), load_stack("medium-next", tmp_path)


class Prom:
    """Every gate at 0, the source's baseline terms at 0.01, both deployments scraped."""

    def __init__(self, gate_list):
        self.promql = {g.promql for g in gate_list}

    def recording_rules(self):
        return {}

    def query(self, expr):
        if expr.startswith("count(up"):
            return 2.0
        return 0.0 if expr in self.promql else 0.01


class Traffic:
    def __init__(self, log):
        self.log = log

    def set_weight(self, percent):
        self.log.append(percent)

    def use_fallback(self):
        raise AssertionError("not the fallback strategy")

    def describe(self):
        return "scripted"


class Driver:
    def __init__(self, url):
        self.url = url

    def check(self):
        pass

    def up(self, stack):
        return {"endpoints": {"llama-8b": [self.url]}}


def _run(tmp_path, stubs, golden_source="default", **model_changes):
    src, dst = _stacks(tmp_path, **model_changes)
    plan = plan_migration("medium-prod", src, "medium-next", dst, window="10s").to_json()
    for step in plan["traffic_steps"]:
        step["hold"] = "1s"
    plan["golden"] = r.golden_plan(src, dst, r.load_golden_prompts())
    a, b = stubs
    weights: list = []
    said: list = []
    gate_list = [gate_defs.Gate(g["name"], g["promql"], g["op"], g["threshold"], g["unit"], g["why"])
                 for g in plan["gates"]]
    source = {"llama-8b": [f"http://{a.address}"]} if golden_source == "default" else golden_source
    run = r.MigrationRun(Journal(tmp_path / "j.jsonl"), Driver(f"http://{b.address}"),
                         lambda outputs, fallback=False: Traffic(weights), Prom(gate_list),
                         r.RunConfig(eval_interval_s=0.01, hold_scale=0.01, warmup_requests=2, golden_source=source),
                         say=said.append)
    code = run.run(plan, resume=False)
    return code, weights, said, Journal(tmp_path / "j.jsonl").records(), plan


def test_golden_plan_only_for_weight_changes(tmp_path):
    src, dst = _stacks(tmp_path)
    spec = r.golden_plan(src, dst, r.load_golden_prompts())
    assert [(m["model"], m["source_dtype"], m["destination_dtype"], m["tolerance"]) for m in spec["models"]] == [
        ("llama-8b", "bf16", "fp8", "to_8bit")]
    assert len(spec["prompts"]) >= 10 and spec["seed"] == r.GOLDEN_SEED
    assert r.golden_plan(src, src, spec["prompts"]) is None
    small, medium = load_stack("small-dev"), load_stack("medium-prod")
    assert r.golden_plan(small, medium, spec["prompts"]) is None  # llama-8b: same weights, resized
    assert r.golden_source_urls({"source_servers": {"llama-8b": ["10.0.0.1:8000"]}}) == {"llama-8b": ["http://10.0.0.1:8000"]}
    assert r.golden_source_urls({"golden_source": {"llama-8b": "http://a:1"}}) == {"llama-8b": ["http://a:1"]}


def test_equal_outputs_pass_and_the_run_goes_on(tmp_path, stubs):
    _drift(stubs[1], 0.0)
    code, weights, said, records, _ = _run(tmp_path, stubs)
    assert code == 0, said
    golden = [x for x in records if x["event"] == "golden"]
    assert len(golden) == 1 and golden[0]["passed"] and golden[0]["differ"] == 0 and golden[0]["tolerance"] == "to_8bit"
    events = [x["event"] for x in records]
    assert events.index("golden") < events.index("precheck") < events.index("weight")
    assert weights == [0, 5, 20, 50, 100]


def test_small_drift_within_the_fp8_tolerance_passes(tmp_path, stubs):
    _drift(stubs[1], 0.03)
    try:
        code, _, said, records, _ = _run(tmp_path, stubs)
    finally:
        _drift(stubs[1], 0.0)
    golden = next(x for x in records if x["event"] == "golden")
    assert code == 0 and golden["passed"] and golden["differ"] > 0, said


def test_drift_beyond_tolerance_stops_before_any_traffic_and_names_the_prompts(tmp_path, stubs):
    _drift(stubs[1], 0.4)
    try:
        code, weights, said, records, plan = _run(tmp_path, stubs)
    finally:
        _drift(stubs[1], 0.0)
    assert code == 1
    assert weights == [0]  # set to 0 before the check; never moved
    golden = next(x for x in records if x["event"] == "golden")
    assert not golden["passed"] and golden["diverged"]
    ids = {p["id"] for p in plan["golden"]["prompts"]}
    assert {d["id"] for d in golden["diverged"]} <= ids
    stopped = next(x for x in records if x["event"] == "stopped")
    assert "golden set for llama-8b" in stopped["why"] and golden["diverged"][0]["id"] in stopped["why"]
    assert records[-1] == {**records[-1], "event": "done", "result": "stopped"}
    assert not [x for x in records if x["event"] in ("precheck", "weight")]
    assert any("STOPPED before any traffic moved" in s for s in said)


def test_same_dtype_new_revision_needs_identical_outputs(tmp_path, stubs):
    _drift(stubs[1], 0.05)
    try:
        code, weights, _, records, _ = _run(tmp_path, stubs, revision="0e9e39f249a16976918f6564b8830bc894c89659")
    finally:
        _drift(stubs[1], 0.0)
    golden = next(x for x in records if x["event"] == "golden")
    assert golden["tolerance"] == "same_dtype" and not golden["passed"] and code == 1 and weights == [0]


def test_no_source_url_stops_and_says_which(tmp_path, stubs):
    code, weights, _, records, _ = _run(tmp_path, stubs, golden_source=None)
    stopped = next(x for x in records if x["event"] == "stopped")
    assert code == 1 and weights == [0] and "no source" in stopped["why"] and "source_servers" in stopped["why"]


def test_cli_golden_file_that_does_not_exist_exits_2(tmp_path):
    _stacks(tmp_path)
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({"kind": "httproute"}))
    proc = subprocess.run([TIERSCALE, "migrate", "run", "--from", "medium-prod", "--to", "medium-next", "--stacks-dir",
                           str(tmp_path), "--traffic", str(traffic), "--journal", str(tmp_path / "j.jsonl"),
                           "--golden", str(tmp_path / "missing.jsonl")], capture_output=True, text=True,
                          env=dict(os.environ, PATH=str(tmp_path)), timeout=120)
    assert proc.returncode == 2 and "--golden" in proc.stderr and "missing.jsonl" in proc.stderr, proc.stderr
