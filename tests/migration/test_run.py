"""`migrate run` parts without the live rig: the nginx split rendered from the gateway template
(and accepted by `nginx -t`), HTTPRoute weights, the large tier's payloads, the Pulumi driver
without a CLI, the journal, and the runner's gate logic against a scripted Prometheus."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from components.migration import gates as gate_defs
from components.migration import traffic as t
from components.migration.drivers import DriverError, PulumiDriver
from components.migration.journal import Journal, JournalCorrupt, RunState
from components.migration.plan import plan_migration
from components.migration.prom import GateEvaluator
from components.migration.runner import MigrationRun, RunConfig
from components.serving.model_router import router_js
from components.small.project import nginx_conf
from tests.conftest import TIERSCALE
from tests.migration.fakes import FakeDriver, FakeProm, FakeTraffic
from tests.support.stacks import example_stack

SRC_SERVERS = {"llama-8b": ["127.0.0.1:9001", "127.0.0.1:9002"], "qwen-14b": ["127.0.0.1:9003"]}
DST_SERVERS = {"llama-8b": ["127.0.0.1:9101", "127.0.0.1:9102"]}


def _split(tmp_path, **kw) -> t.NginxSplit:
    (tmp_path / "model_router.js").write_text(router_js())
    render = {"listen": "127.0.0.1:18000", "status_listen": "127.0.0.1:18001", "runtime_dir": str(tmp_path),
              "log_dir": str(tmp_path), "temp_dir": str(tmp_path / "tmp"), "js_path": str(tmp_path / "model_router.js")}
    return t.NginxSplit("small-dev", example_stack("small-dev"), tmp_path / "nginx.conf", SRC_SERVERS, DST_SERVERS,
                        render, "http://127.0.0.1:18001/gateway/traffic", **kw)


def _upstream(conf: str, name: str) -> str:
    return conf.split(f"upstream {name} {{", 1)[1].split("}", 1)[0]


def test_pool_weights_are_exact_shares():
    for percent in range(1, 100):
        for n_src, n_dst in ((1, 1), (2, 2), (3, 2), (2, 5)):
            src, dst = t.pool_weights(percent, n_src, n_dst)
            assert sum(dst) * 100 == percent * (sum(src) + sum(dst))


def test_split_at_zero_is_the_gateway_config_plus_the_traffic_status(tmp_path):
    """The split is the project's gateway template, not a copy: at 0% it renders exactly what
    the small tier deploys, plus the status location the run confirms reloads on."""
    split = _split(tmp_path)
    ours = split.render_conf(0, revision=7)
    deployed = nginx_conf(example_stack("small-dev"), "small-dev", SRC_SERVERS, **split.render)
    status = ours.split("        # The traffic split this config carries")[1].split("        }\n", 1)[0]
    assert ours.replace("        # The traffic split this config carries" + status + "        }\n", "") == deployed
    assert '{"percent":0,"revision":7,"fallback":false}' in status


@pytest.mark.parametrize("percent", [5, 20, 50])
def test_split_weights_both_pools_and_nginx_accepts_it(tmp_path, percent):
    split = _split(tmp_path)
    conf = split.render_conf(percent)
    llama = _upstream(conf, "vllm_llama_8b")
    assert "least_conn;" not in llama  # weighted round robin: exact shares
    src_w, dst_w = t.pool_weights(percent, 2, 2)
    for server, w in zip(SRC_SERVERS["llama-8b"] + DST_SERVERS["llama-8b"], src_w + dst_w):
        assert f"server {server} weight={w} max_fails=" in llama
    # A model the destination does not serve keeps its source pool, balanced as before.
    qwen = _upstream(conf, "vllm_qwen_14b")
    assert "least_conn;" in qwen and "127.0.0.1:9003 max_fails" in qwen
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "check.conf").write_text(conf)
    proc = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c",
                           str(tmp_path / "check.conf")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_split_at_100_is_the_destination_pool_alone(tmp_path):
    llama = _upstream(_split(tmp_path).render_conf(100), "vllm_llama_8b")
    assert "least_conn;" in llama and "9001" not in llama and "9101" in llama and "9102" in llama


def test_fallback_replaces_the_source_pool(tmp_path):
    split = _split(tmp_path, fallback_servers={"llama-8b": ["127.0.0.1:9500"]}, fallback_active=True)
    llama = _upstream(split.render_conf(20), "vllm_llama_8b")
    assert "9001" not in llama and "127.0.0.1:9500 weight=8" in llama and "127.0.0.1:9101 weight=1" in llama
    with pytest.raises(t.TrafficError, match="fallback servers"):
        _split(tmp_path).use_fallback()


def test_httproute_weights_across_namespaces():
    src = example_stack("medium-prod")
    dst = example_stack("medium-eks")
    applied = []
    split = t.HTTPRouteSplit(src, dst, applied.append)
    split.set_weight(20)
    manifests = applied[0]
    route = manifests[0]
    assert route["kind"] == "HTTPRoute"
    shared = {m.served_model_name for m in src.models} & {m.served_model_name for m in dst.models}
    weighted = [r["backendRefs"] for r in route["spec"]["rules"] if len(r["backendRefs"]) == 2]
    assert weighted and all([b["weight"] for b in refs] == [80, 20] for refs in weighted)
    assert len(weighted) >= len(shared)
    if src.spec.target.namespace != dst.spec.target.namespace:
        assert manifests[1]["kind"] == "ReferenceGrant"
        assert all(refs[1]["namespace"] == dst.spec.target.namespace for refs in weighted)
    # 0% sends nothing to the destination's Services.
    assert all(len(r["backendRefs"]) == 1 and r["backendRefs"][0]["weight"] > 0
               for r in split.manifests(0)[0]["spec"]["rules"])


def test_large_tier_back_ends_render_payloads_but_cannot_apply():
    r53 = t.Route53Split("Z123", "api.example.com", "old.example.com", "new.example.com")
    changes = r53.payloads(20)["ChangeBatch"]["Changes"]
    assert [c["ResourceRecordSet"]["Weight"] for c in changes] == [80, 20]
    dial = t.AcceleratorDial("arn:src", "arn:dst")
    assert [p["TrafficDialPercentage"] for p in dial.payloads(20)] == [80.0, 20.0]
    for backend in (r53, dial):
        with pytest.raises(NotImplementedError, match="large tier"):
            backend.set_weight(5)


def test_pulumi_driver_without_the_cli_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DriverError, match=r"Pulumi CLI \(`pulumi`\) is not installed"):
        PulumiDriver().up("medium-prod")


def test_run_with_the_pulumi_driver_and_no_cli_exits_2(tmp_path):
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({"kind": "route53"}))
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run([TIERSCALE, "migrate", "run", "--from", "small-dev", "--to", "medium-prod",
                           "--accept", "removed-model", "--traffic",
                           str(traffic), "--journal", str(tmp_path / "j.jsonl")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Pulumi CLI (`pulumi`) is not installed" in proc.stderr, proc.stderr
    # The journal says what happened; a second run refuses to start over it.
    events = [json.loads(line)["event"] for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert events == ["start", "error"]
    again = subprocess.run([TIERSCALE, "migrate", "run", "--from", "small-dev", "--to", "medium-prod",
                           "--accept", "removed-model", "--traffic",
                            str(traffic), "--journal", str(tmp_path / "j.jsonl")], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_journal_refuses_a_torn_last_line_and_locks(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append("start", plan={"x": 1})
    j.append("weight", step=0, percent=5, hold_s=1)
    j.append("step_done", step=0, percent=5)
    state = RunState.read(j.records())
    assert state.steps_done == {0} and state.current["percent"] == 5
    with open(j.path, "a") as f:
        f.write('{"event": "wei')  # killed mid-write
    with pytest.raises(JournalCorrupt, match=r"j\.jsonl:4: torn"):
        j.records()
    j.lock()
    other = Journal(tmp_path / "j.jsonl")
    with pytest.raises(Exception, match="another `migrate run`"):
        other.lock()
    j.unlock()
    other.lock()


# -- the runner against a scripted Prometheus (tests/migration/fakes.py) ---------------

def _run(tmp_path, values, strategy=None):
    plan = plan_migration("small-dev", example_stack("small-dev"), "medium-prod", example_stack("medium-prod"),
                          strategy, window="10s").to_json()
    for step in plan["traffic_steps"]:
        step["hold"] = "3s"
    log: list = []
    prom = FakeProm(values)
    prom.gates = {g["name"]: gate_defs.Gate(g["name"], g["promql"], g["op"], g["threshold"], g["unit"], g["why"])
                  for g in plan["gates"]}
    run = MigrationRun(Journal(tmp_path / "j.jsonl"), FakeDriver(log), lambda outputs, fallback=False: FakeTraffic(log),
                       prom, RunConfig(eval_interval_s=0.01, hold_scale=0.01), say=lambda s: log.append(("say", s)))
    code = run.run(plan, resume=False)
    return code, log, Journal(tmp_path / "j.jsonl").records()


def test_runner_completes_when_every_gate_holds(tmp_path):
    code, log, records = _run(tmp_path, {})
    assert code == 0
    assert [e for e in log if e[0] == "weight"] == [("weight", p) for p in (0, 5, 20, 50, 100)]
    assert records[-1]["result"] == "completed"


def test_runner_rolls_back_on_a_mid_hold_breach_and_names_the_gate(tmp_path):
    # ttft fine for the first evaluations, then over the SLO.
    code, log, records = _run(tmp_path, {"ttft_p99_seconds": [0.1] * 8 + [9.0]})
    assert code == 1
    weights = [e[1] for e in log if e[0] == "weight"]
    assert weights[-1] == 0 and weights[-2] > 0
    rollback = next(r for r in records if r["event"] == "rollback")
    assert rollback["gate"] == "ttft_p99_seconds" and rollback["value"] == 9.0
    assert any("gate ttft_p99_seconds = 9 s (pass when <= 0.5" in e[1] for e in log if e[0] == "say")


def test_missing_data_waits_mid_hold_but_fails_at_the_end(tmp_path):
    # No TPOT data at all after the pre-shift check: pending mid-hold, a failure at the end of step 1.
    code, log, records = _run(tmp_path, {"tpot_p99_seconds": [0.01, None]})
    assert code == 1
    rollback = next(r for r in records if r["event"] == "rollback")
    assert rollback["gate"] == "tpot_p99_seconds" and rollback["value"] is None and rollback["percent"] == 5
    mid = [r for r in records if r["event"] == "gates" and not r["final"]]
    assert mid and all(r["step"] == 0 for r in mid)


def test_fallback_strategy_moves_the_source_share_first(tmp_path):
    code, log, _ = _run(tmp_path, {}, strategy="fallback")
    actions = [e for e in log if e[0] != "say"]
    assert code == 0 and actions[:3] == [("fallback",), ("up", "medium-prod"), ("weight", 0)]


def test_comparison_gates_use_the_baseline_when_the_source_is_idle():
    gate_list = gate_defs.gates('{deployment="dst"}', '{deployment="src"}', 500, 100, "10s")
    change = next(g for g in gate_list if g.name == "ttft_p99_change")

    class Idle(FakeProm):
        def query(self, expr):
            if expr == change.promql:
                return None  # the source served nothing in the window: NaN
            if expr == change.samples[0]:
                return 500.0  # the destination's requests in the window
            assert "vector(0.2)" in expr and 'deployment="src"' not in expr
            return 1.05

    # The idle source's request count is the baseline's too.
    ev = GateEvaluator(Idle({}), [change], '{deployment="src"}', "10s",
                       baseline={"ttft_p99_seconds": 0.2, "ttft_p99_change:source_samples": 800.0})
    result = ev.evaluate_one(change)
    assert result.read == "promql+baseline" and result.value == 1.05 and result.holds
    assert result.samples == {"destination": 500, "source": 800} and result.skipped is None


class Counted(FakeProm):
    """Every gate at a fixed value; each comparison gate's request counts from `counts()`."""

    def __init__(self, values: dict, counts):
        super().__init__({})
        self.fixed, self.counts = values, counts

    def query(self, expr):
        if expr.startswith("count(up"):
            return 2.0
        for name, g in self.gates.items():
            if expr == g.promql:
                return self.fixed.get(name, 0.0)
            if g.samples and expr in g.samples:
                return float(self.counts()[g.samples.index(expr)])
        return 0.01


def _change_gate():
    gate_list = gate_defs.gates('{deployment="dst"}', '{deployment="src"}', 500, 100, "10s")
    return next(g for g in gate_list if g.name == "ttft_p99_change")


@pytest.mark.parametrize("dst_n, src_n, judged", [(50, 5000, False), (5000, 99, False), (100, 100, True), (400, 5000, True)])
def test_the_p99_ratio_is_judged_only_with_enough_samples_on_both_sides(dst_n, src_n, judged):
    """3.3x the source's p99 (what 50 warm-up requests measured on real CPU engines) fails the
    ratio only once both sides have gates.MIN_COMPARISON_SAMPLES requests in the window."""
    change = _change_gate()
    prom = Counted({"ttft_p99_change": 3.3}, lambda: (dst_n, src_n))
    prom.gates = {change.name: change}
    result = GateEvaluator(prom, [change], '{deployment="src"}', "10s").evaluate_one(change)
    assert result.value == 3.3 and result.samples == {"destination": dst_n, "source": src_n}
    assert result.holds is (not judged)
    assert (result.skipped is None) is judged
    if not judged:
        assert "fewer than 100 requests in the window" in result.describe()


def test_warm_up_is_judged_on_the_slos_and_the_ratio_once_traffic_gives_it_samples(tmp_path):
    """The pre-check no longer refuses a healthy destination on its 50 warm-up requests' p99
    (3.3x the source's); the same ratio rolls back the first step once the destination has
    enough requests to make it a p99. Absolute SLO gates judge throughout."""
    plan = plan_migration("small-dev", example_stack("small-dev"), "medium-prod", example_stack("medium-prod"),
                          None, window="10s").to_json()
    for step in plan["traffic_steps"]:
        step["hold"] = "3s"
    log: list = []
    moved = lambda: any(e[0] == "weight" and e[1] > 0 for e in log)  # noqa: E731
    prom = Counted({"ttft_p99_change": 3.3, "ttft_p99_seconds": 0.2}, lambda: (400 if moved() else 50, 5000))
    prom.gates = {g["name"]: gate_defs.Gate(g["name"], g["promql"], g["op"], g["threshold"], g["unit"], g["why"],
                                            tuple(g.get("samples", ())), g.get("min_samples", 0))
                  for g in plan["gates"]}
    run = MigrationRun(Journal(tmp_path / "j.jsonl"), FakeDriver(log), lambda outputs, fallback=False: FakeTraffic(log),
                       prom, RunConfig(eval_interval_s=0.01, hold_scale=0.01, data_timeout_s=2), say=lambda s: log.append(("say", s)))
    code = run.run(plan, resume=False)
    records = Journal(tmp_path / "j.jsonl").records()
    precheck = next(r for r in records if r["event"] == "precheck")
    change = next(g for g in precheck["results"] if g["gate"] == "ttft_p99_change")
    assert precheck["holds"] and change["skipped"] and change["samples"] == {"destination": 50, "source": 5000}
    assert any("ttft_p99_change not judged yet" in e[1] for e in log if e[0] == "say")
    assert code == 1
    rollback = next(r for r in records if r["event"] == "rollback")
    assert rollback["gate"] == "ttft_p99_change" and rollback["step"] == 0 and rollback["value"] == 3.3
