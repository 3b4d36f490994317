"""`tierscale migrate plan` / `migrate check` through the real CLI on the example stacks."""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_cli


def plan_json(*extra: str) -> dict:
    proc = run_cli("migrate", "plan", "--from", "small-dev", "--to", "medium-prod", "--json", "--accept", "removed-model",
                   *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_small_to_medium_plan_has_the_documented_keys():
    plan = plan_json()
    for key in ("strategy", "phases", "traffic_steps", "gates", "rollback", "extra_gpus", "warnings"):
        assert key in plan
    assert [p["id"] for p in plan["phases"]] == ["P0", "P1", "P2", "P3", "P4"]
    assert all(p["name"] and p["tasks"] and p["criteria"] for p in plan["phases"])
    steps = [s["percent"] for s in plan["traffic_steps"]]
    assert steps == sorted(steps) and steps[-1] == 100 and steps[0] <= 5
    assert {g["name"] for g in plan["gates"]} >= {"ttft_p99_seconds", "tpot_p99_seconds", "error_ratio_increase", "ttft_p99_change"}
    assert all({"name", "promql", "threshold", "unit"} <= set(g) for g in plan["gates"])
    ttft = next(g for g in plan["gates"] if g["name"] == "ttft_p99_seconds")
    assert ttft["threshold"] == 0.5  # medium-prod's slo.ttftP99Ms


def test_tier_change_recommends_buffer_and_names_what_changes():
    plan = plan_json()
    assert plan["strategy"] == plan["recommended_strategy"] == "buffer"
    assert plan["tier_change"] == "small -> medium"
    changes = {c["name"]: c["change"] for c in plan["changes"]}
    assert changes["llama-70b"] == "added" and changes["qwen-14b"] == "removed"
    assert any("qwen-14b" in w and "NOT by the destination" in w for w in plan["warnings"])
    # buffer: the destination's whole minimum fleet runs beside the source (medium-prod: 3 x TP4 + 3 x TP1)
    assert plan["extra_gpus"] == 15
    assert plan["cold_start_s"]["llama-70b"] > plan["cold_start_s"]["llama-8b"]


def test_rolling_across_tiers_is_warned():
    plan = plan_json("--strategy", "rolling")
    assert plan["strategy"] == "rolling"
    assert any("cannot move to another tier" in w for w in plan["warnings"])


def test_bad_strategy_and_unknown_stack_exit_2():
    proc = run_cli("migrate", "plan", "--from", "small-dev", "--to", "medium-prod", "--strategy", "blue-green")
    assert proc.returncode == 2 and "--strategy: 'blue-green' is not allowed" in proc.stderr
    proc = run_cli("migrate", "plan", "--from", "small-dve", "--to", "medium-prod")
    assert proc.returncode == 2 and "did you mean 'small-dev'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_migrate_check_small_dev_stays_and_heavy_small_stack_moves(tmp_path):
    proc = run_cli("migrate", "check", "--stack", "small-dev")
    assert proc.returncode == 0 and "no tier change due" in proc.stdout
    config = {"config": {
        "tierscale:tier": "small", "tierscale:target": {"kind": "docker-host"},
        "tierscale:gpu": {"type": "h100-80gb", "perNode": 8},
        "tierscale:models": [{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 8, "expectedQps": 900}],
        "tierscale:security": {"apiAuth": False},
    }}
    (tmp_path / "Pulumi.busy.yaml").write_text(yaml.safe_dump(config))
    proc = run_cli("migrate", "check", "--stack", "busy", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "move to medium" in proc.stdout and "planned load 900 QPS > 500" in proc.stdout
