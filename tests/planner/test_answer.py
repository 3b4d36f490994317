"""`tierscale plan` answers a person can use: one line, the YAML to paste, 80 columns, budgets."""

from __future__ import annotations

import json

import yaml

from components.facts import resolve_model
from components.planner import PlanRequest, plan
from components.planner.answer import one_line, render, stack_yaml
from components.spec import load_spec
from tests.conftest import run_cli


def request(model="llama-3.1-8b", gpu="l40s", **kw):
    key, facts = resolve_model(model)
    kw.setdefault("max_model_len", 8192)
    kw.setdefault("qps", 10)
    return PlanRequest(model_key=key, model=facts, gpu_key=gpu, **kw)


def test_text_fits_80_columns_and_never_cuts_a_word():
    p = plan(request("llama-3.1-70b", gpu="any", qps=800, top=5))
    text = render(p, "meta-llama/Llama-3.1-70B-Instruct", 512, 256, width=80)
    assert text.startswith("answer: ")
    for line in text.splitlines():
        assert len(line) <= 80 or " " not in line.strip(), line
    assert "…" not in text


def test_pasted_yaml_is_a_stack_that_validates_and_its_tier_holds_the_plan():
    p = plan(request())
    assert p.tier == "small" and p.nodes == 1
    pasted = yaml.safe_load(stack_yaml(p, "meta-llama/Llama-3.1-8B-Instruct", 512, 256))["config"]
    config = {k.removeprefix("tierscale:"): v for k, v in pasted.items()}
    config["security"] = {"apiAuth": False}
    stack = load_spec(config, require_secrets=False)
    assert stack.warnings == [], stack.warnings
    (m,) = stack.models
    assert (m.tensor_parallel, m.replicas, m.quantization) == (p.tensor_parallel, p.replicas, p.quantization)


def test_one_line_answer_names_shape_fleet_tier_and_slos():
    p = plan(request())
    line = one_line(p)
    assert f"{p.replicas} x {p.gpu}" in line and f"tier {p.tier}" in line and "TTFT p99" in line and "TPOT" in line


def test_unbounded_ttft_is_words_in_text_and_unchanged_in_json():
    p = plan(request(qps=500, tensor_parallel=1, replicas=1))
    assert p.ttft_ms_estimate == 1e9
    assert "unbounded" in render(p, None, 512, 256) and "1,000,000,000" not in render(p, None, 512, 256)
    assert p.to_json()["ttft_ms_estimate"] == 1e9


def test_gpu_defaults_to_searching_every_gpu():
    proc = run_cli("plan", "--model", "llama-3.1-8b", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["candidates_evaluated"] > 20


def test_budget_says_whether_it_fits_what_you_have():
    small = plan(request("llama-3.1-405b", gpu="h100-80gb", qps=2, max_nodes=2))
    assert small.within_budget and small.meets_slo and small.gpus <= 16
    big = plan(request("llama-3.1-405b", gpu="h100-80gb", qps=50, max_nodes=2))
    assert big.within_budget is False and not big.meets_slo and big.gpus <= 16
    assert any("over budget" in m for m in big.slo_misses) and 0 < big.budget_qps < 50
    proc = run_cli("plan", "--model", "llama-3.1-405b", "--gpu", "h100-80gb", "--qps", "50", "--nodes", "2")
    assert proc.returncode == 0 and "Within your 16 GPUs: no" in proc.stdout.replace("\n        ", " ")


def test_budget_too_small_for_one_replica_exits_2_naming_the_option():
    proc = run_cli("plan", "--model", "llama-3.1-405b", "--gpu", "h100-80gb", "--max-gpus", "2")
    assert proc.returncode == 2 and "--max-gpus" in proc.stderr and "Traceback" not in proc.stderr


def test_safety_margin_reflects_the_measured_error():
    from components.planner import calibration
    p = plan(request())
    assert p.slo_margin_pct == round(calibration.slo_margin() * 100, 1) > 0
    assert p.tpot_ms_estimate <= p.tpot_slo_ms / (1 + p.slo_margin_pct / 100) + 1e-6
