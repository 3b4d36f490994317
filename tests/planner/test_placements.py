"""Known placements and tier thresholds."""

from __future__ import annotations

import json

import pytest

from components.facts import gpu_catalog, resolve_model
from components.planner import PlanRequest, parallelism, plan, tiering
from tests.conftest import run_cli


def smallest(model, gpu, quant, max_len=8192):
    """The smallest placement that fits (what fit advice and the search's PP bound use)."""
    _, facts = resolve_model(model)
    g = gpu_catalog()[gpu]
    return parallelism.smallest_placement(facts, g, quant, g.max_gpus_per_node, max_len, 0.9)


def place(model, gpu, quant, max_len=8192):
    key, facts = resolve_model(model)
    return plan(PlanRequest(model_key=key, model=facts, gpu_key=gpu, quantization=quant, max_model_len=max_len, qps=10))


@pytest.mark.parametrize("model,gpu,quant,tp,pp", [
    ("llama-3.1-8b", "h100-80gb", "bf16", 1, 1),      # fits one H100
    ("llama-3.1-70b", "h100-80gb", "awq", 1, 1),      # int4 fits one H100
    ("llama-3.1-70b", "h100-80gb", "bf16", 2, 1),     # bf16 needs more than one
    ("llama-3.1-405b", "h100-80gb", "fp8", 8, 1),     # fits one 8xH100 node
    ("llama-3.1-405b", "h100-80gb", "bf16", 8, 2),    # needs two 8xH100 nodes
    ("deepseek-v3", "h200-141gb", "fp8", 8, 1),       # fits one 8xH200 node
])
def test_known_placements(model, gpu, quant, tp, pp):
    p = smallest(model, gpu, quant)
    assert (p.tensor_parallel, p.pipeline_parallel) == (tp, pp)
    assert p.max_concurrent_sequences >= 1
    planned = place(model, gpu, quant)  # the search never picks a placement that does not fit
    assert planned.fits and planned.gpus_per_replica >= tp * pp


def test_deepseek_v3_does_not_fit_one_h100_node():
    assert smallest("deepseek-v3", "h100-80gb", "fp8").pipeline_parallel == 2
    assert place("deepseek-v3", "h100-80gb", "fp8").pipeline_parallel >= 2


@pytest.mark.parametrize("qps,tier", [(0, "small"), (499, "small"), (499.9, "small"), (500, "medium"),
                                      (10_000, "medium"), (10_000.1, "large"), (20_000, "large")])
def test_qps_thresholds(qps, tier):
    assert tiering.tier_for_qps(qps) == tier


# The small tier is one host (components/planner/tiering.py, docs/planner.md): 2 nodes is medium.
@pytest.mark.parametrize("nodes,tier", [(1, "small"), (2, "medium"), (9, "medium"), (50, "medium"), (51, "large")])
def test_node_thresholds(nodes, tier):
    assert tiering.tier_for_nodes(nodes) == tier


@pytest.mark.parametrize("availability,tier", [(99.0, "small"), (99.5, "medium"), (99.9, "medium"), (99.95, "large"), (99.99, "large")])
def test_availability_thresholds(availability, tier):
    assert tiering.tier_for_availability(availability) == tier


def test_largest_criterion_wins_and_is_named():
    choice = tiering.recommend_tier(qps=100, nodes=2, availability_pct=99.99)
    assert choice.tier == "large" and "99.99% availability" in choice.reason


def test_plan_command_json():
    proc = run_cli("plan", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "h100-80gb",
                   "--quantization", "bf16", "--qps", "800", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("weight_bytes", "kv_bytes_per_token", "tensor_parallel", "pipeline_parallel",
                "max_concurrent_sequences", "decode_tokens_per_s_bound", "prefill_tokens_per_s_bound",
                "replicas", "gpus", "tier", "cost_per_year_usd", "cost_per_million_output_tokens_usd", "units"):
        assert key in data
    assert data["kv_bytes_per_token"] == 327_680
    assert data["weight_bytes"] == pytest.approx(141.1e9, rel=0.01)
    # Throughput, not the smallest fit: TP4 or TP8 (issue #15).
    assert data["tensor_parallel"] in (4, 8) and data["pipeline_parallel"] == 1
    assert data["gpus"] == data["replicas"] * data["tensor_parallel"]
    # The tier named holds the plan (its QPS and node count; one set of thresholds in tiering.py).
    load = (data["qps"], data["nodes"], data["availability_pct"])
    assert tiering.holds(data["tier"], *load)
    smaller = tiering.TIERS[:tiering.TIERS.index(data["tier"])]
    assert not any(tiering.holds(t, *load) for t in smaller)  # and it is the smallest that does
    assert data["meets_slo"] and data["alternatives"]
    assert data["units"]["cost_per_year_usd"] == "USD/year"


def test_plan_rejects_unknown_gpu_naming_the_option():
    proc = run_cli("plan", "--model", "llama-3.1-8b", "--gpu", "h100")
    assert proc.returncode == 2
    assert "--gpu: 'h100' is not known (did you mean 'h100-80gb'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
