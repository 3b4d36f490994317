"""The search: what it enumerates, what it picks, and properties that must hold for any load."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from components.facts import gpu_catalog, model_catalog, resolve_model
from components.planner import PlanRequest, perf, plan, search, tiering
from components.planner.plan import compare_to_optimum

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def request(model="llama-3.1-70b", gpu="h100-80gb", quant="bf16", **kw):
    key, facts = resolve_model(model)
    kw.setdefault("max_model_len", 8192)
    kw.setdefault("qps", 800)
    return PlanRequest(model_key=key, model=facts, gpu_key=gpu, quantization=quant, **kw)


def test_readme_example_lands_on_tp4_or_tp8_in_a_tier_that_holds_it():
    p = plan(request(prompt_tokens=512, output_tokens=256))
    assert p.tensor_parallel in (4, 8) and p.pipeline_parallel == 1
    assert p.tier in ("medium", "large") and p.meets_slo
    assert tiering.holds(p.tier, p.qps, p.nodes, p.availability_pct)
    # sized with the measured error as headroom: estimates sit below SLO / (1 + margin)
    assert p.slo_margin_pct > 0
    assert p.ttft_ms_estimate <= 500 / (1 + p.slo_margin_pct / 100) + 1e-6
    assert p.tpot_ms_estimate <= 100 / (1 + p.slo_margin_pct / 100) + 1e-6
    assert p.alternatives and all(a.why_not_chosen for a in p.alternatives)


def test_small_load_without_stated_availability_is_small():
    p = plan(request("llama-3.1-8b", qps=100))
    assert p.tier == "small" and "availability not stated" in p.tier_reason
    assert p.spare_replicas == 0


def test_stated_availability_adds_spares_and_votes():
    p = plan(request("llama-3.1-8b", qps=100, availability_pct=99.95))
    assert p.spare_replicas == 2 and p.tier == "large" and "99.95% availability" in p.tier_reason
    assert plan(request("llama-3.1-8b", qps=100, availability_pct=99.5)).spare_replicas == 1
    assert plan(request("llama-3.1-8b", qps=100, availability_pct=99.0)).spare_replicas == 0


def test_quantizations_come_from_checkpoints_plus_online_fp8():
    m = model_catalog()
    h100, a100 = gpu_catalog()["h100-80gb"], gpu_catalog()["a100-80gb"]
    assert search.servable_quantizations(m["llama-3.1-70b"], h100) == ["bf16", "fp8"]
    # vLLM runs fp8 on Ampere as weight-only W8A16 (FP8 Marlin): memory gains, bf16 compute
    assert search.servable_quantizations(m["llama-3.1-70b"], a100) == ["bf16", "fp8"]
    assert search.servable_quantizations(m["qwen2.5-7b"], h100) == ["bf16", "fp8", "awq"]
    assert search.servable_quantizations(m["deepseek-v3"], h100) == ["fp8"]
    assert search.servable_quantizations(m["gpt-oss-120b"], h100) == ["mxfp4"]
    for quant in ("awq", "gptq", "int8", "mxfp4"):
        assert search.quantization_problem(m["llama-3.1-70b"], quant, h100)
    assert search.quantization_problem(m["llama-3.1-70b"], "fp8", a100) is None
    assert perf.peak_flops_per_gpu(a100, "fp8") == perf.peak_flops_per_gpu(a100, "bf16")
    assert perf.peak_flops_per_gpu(h100, "fp8") > perf.peak_flops_per_gpu(h100, "bf16")
    assert search.quantization_problem(m["llama-3.1-70b"], "fp16", h100) is None


def test_search_without_quantization_never_picks_an_unpublished_format():
    p = plan(request("llama-3.1-70b", gpu="any", quant=None, top=50))
    assert p.quantization in ("bf16", "fp8")
    assert {a.quantization for a in p.alternatives} <= {"bf16", "fp8"}


def test_expected_experts_touched():
    assert perf.expected_experts_touched(8, 2, 1) == pytest.approx(2)
    assert perf.expected_experts_touched(256, 8, 1) == pytest.approx(8)
    assert perf.expected_experts_touched(256, 8, 64) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 64))
    assert perf.expected_experts_touched(8, 2, 256) == pytest.approx(8)


def test_moe_reads_more_weights_at_larger_batches():
    ds = model_catalog()["deepseek-v3"]
    assert perf.params_touched(ds, 1) == pytest.approx(ds.active_params, rel=1e-6)
    assert perf.params_touched(ds, 256) > 0.99 * ds.params_total  # 256 tokens touch nearly every expert
    assert perf.params_touched(ds, 10_000) == pytest.approx(ds.params_total, rel=1e-3)
    dense = model_catalog()["llama-3.1-70b"]
    assert perf.params_touched(dense, 1) == dense.params_total


def test_fixed_parallelism_evaluates_that_configuration():
    p = plan(request(tensor_parallel=2, pipeline_parallel=1))
    assert (p.tensor_parallel, p.pipeline_parallel) == (2, 1) and p.alternatives == []


def test_fixed_replicas_too_few_misses_and_compare_warns():
    optimum = plan(request())
    starved = plan(request(tensor_parallel=4, replicas=10, max_num_seqs=256))
    assert not starved.meets_slo and starved.slo_misses
    warnings = compare_to_optimum(starved, optimum)
    assert any("misses an SLO" in w for w in warnings)
    wasteful = plan(request(tensor_parallel=2, max_num_seqs=16))
    assert any("x the optimum" in w for w in compare_to_optimum(wasteful, optimum))
    assert compare_to_optimum(optimum, optimum) == []


def test_custom_model_is_planned_like_a_catalog_one():
    facts = model_catalog()["llama-3.1-70b"].model_copy(update={"hf_repos": [], "source": "inline"})
    custom = plan(PlanRequest(model_key="custom", model=facts, gpu_key="h100-80gb", quantization="bf16",
                              max_model_len=8192, qps=800))
    assert custom.gpus == plan(request()).gpus


def test_full_search_over_every_gpu_is_fast_enough_to_run_inline():
    p = plan(request("deepseek-v3", gpu="any", quant=None))
    assert p.fits and p.candidates_evaluated > 20


# --- properties ----------------------------------------------------------------------------

loads = st.fixed_dictionaries({
    "model": st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-32b", "mixtral-8x7b"]),
    "qps": st.floats(min_value=200, max_value=5000),
    "prompt_tokens": st.sampled_from([128, 512, 2048]),
    "output_tokens": st.sampled_from([64, 256, 1024]),
    "ttft": st.sampled_from([1000, 2000, 5000]),
    "tpot": st.sampled_from([50, 100, 200]),
})


def _plan(load, **kw):
    args = dict(qps=load["qps"], prompt_tokens=load["prompt_tokens"], output_tokens=load["output_tokens"],
                ttft_slo_ms=load["ttft"], tpot_slo_ms=load["tpot"], top=0)
    args.update(kw)
    return plan(request(load["model"], **{"quant": "bf16", **args}))


@PROPERTY
@given(loads)
def test_doubling_qps_roughly_doubles_gpus_at_scale(load):
    one, two = _plan(load), _plan(load, qps=load["qps"] * 2)
    if one.meets_slo and one.replicas >= 10:
        assert 1.6 <= two.gpus / one.gpus <= 2.4, (one.describe(), two.describe())


@PROPERTY
@given(loads)
def test_h200_never_needs_more_gpus_than_h100(load):
    h100, h200 = _plan(load, gpu="h100-80gb"), _plan(load, gpu="h200-141gb")
    if h100.meets_slo:
        assert h200.meets_slo and h200.gpus <= h100.gpus
        same = _plan(load, gpu="h200-141gb", tensor_parallel=h100.tensor_parallel, max_num_seqs=h100.max_num_seqs)
        assert same.gpus <= h100.gpus


@PROPERTY
@given(loads)
def test_fp8_never_needs_more_gpus_than_bf16(load):
    bf16, fp8 = _plan(load, quant="bf16"), _plan(load, quant="fp8")
    if bf16.meets_slo:
        assert fp8.meets_slo and fp8.gpus <= bf16.gpus


@PROPERTY
@given(loads, st.sampled_from([0.5, 0.75]))
def test_tightening_tpot_never_lowers_cost(load, factor):
    loose = _plan(load)
    tight = _plan(load, tpot_slo_ms=load["tpot"] * factor)
    if tight.meets_slo:
        assert tight.cost_per_hour_usd >= loose.cost_per_hour_usd - 1e-6
