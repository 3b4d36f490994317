"""One verdict: the tier holds the plan, plan / validate / migrate check agree, monotonic relations."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from components.facts import resolve_model
from components.migration.triggers import check
from components.planner import PlanRequest, plan, tiering, verdict
from components.spec import load_spec

PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = st.sampled_from(["llama-3.1-8b", "qwen2.5-14b", "llama-3.1-70b"])
GPUS = st.sampled_from(["l40s", "a100-80gb", "h100-80gb"])


def request(model, gpu, qps, **kw):
    key, facts = resolve_model(model)
    return PlanRequest(model_key=key, model=facts, gpu_key=gpu, max_model_len=8192, qps=qps, top=0, **kw)


@PROPERTY
@given(model=MODELS, gpu=GPUS, qps=st.floats(0.5, 3000))
def test_the_tier_named_holds_the_plan(model, gpu, qps):
    p = plan(request(model, gpu, qps))
    assert tiering.holds(p.tier, p.qps, p.nodes, p.availability_pct)
    if p.tier == "small":
        assert p.nodes == 1, "the small tier is one host"


@PROPERTY
@given(model=MODELS, gpu=GPUS, qps=st.floats(0.5, 1000))
def test_more_load_never_needs_fewer_gpus(model, gpu, qps):
    low = plan(request(model, gpu, qps, quantization="bf16", tensor_parallel=None))
    high = plan(request(model, gpu, qps * 2, quantization="bf16"))
    if low.meets_slo and high.meets_slo and (low.gpu, low.tensor_parallel) == (high.gpu, high.tensor_parallel):
        assert high.gpus >= low.gpus


@pytest.mark.parametrize("model,gpu", [("llama-3.1-8b", "h100-80gb"), ("llama-3.1-70b", "h100-80gb")])
def test_tpot_grows_with_the_batch_and_a_looser_slo_never_costs_more(model, gpu):
    key, facts = resolve_model(model)
    from components.facts import gpu_catalog
    from components.planner import perf
    rep = perf.replica(facts, gpu_catalog()[gpu], "bf16", 4 if "70b" in model else 1, 1)
    steps = [rep.step_s(b, 512, 256) for b in (1, 8, 64, 256)]
    assert steps == sorted(steps)
    tight = plan(request(model, gpu, 50, tpot_slo_ms=50))
    loose = plan(request(model, gpu, 50, tpot_slo_ms=200))
    assert loose.gpus <= tight.gpus


def small_stack(**slo):
    return load_spec({
        "tier": "small", "target": {"kind": "docker-host"}, "gpu": {"type": "l40s", "perNode": 4},
        "models": [{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 1, "tensorParallel": 1}],
        "slo": {"expectedQps": 2, "availability": 99.0, **slo}, "security": {"apiAuth": False},
    }, require_secrets=False)


@pytest.mark.parametrize("slo", [{}, {"expectedQps": 40}, {"expectedQps": 600}, {"ttftP99Ms": 50}])
def test_plan_stack_validate_and_migrate_check_agree(slo):
    stack = small_stack(**slo)
    v = verdict.stack_verdict(stack.spec, stack.models)
    # validate's warnings are the verdict's findings, key for key
    assert [w.path for w in stack.warnings] == [f.key for f in v.all_findings()]
    # plan --stack's configured plan misses an SLO exactly when validate warns about it
    (mv,) = v.models
    assert mv.meets_slo == (not any(w.path.startswith(("slo.", "models[0].replicas")) for w in stack.warnings))
    # migrate check reports a move exactly when validate --strict fails on the tier
    assert check(stack).due == any(w.path == "tier" for w in stack.warnings)
    if check(stack).due:
        assert check(stack).next_tier == v.recommended.tier


def test_an_slo_miss_shown_by_plan_stack_fails_validate_strict():
    stack = small_stack(ttftP99Ms=50)
    (mv,) = verdict.stack_verdict(stack.spec, stack.models).models
    assert not mv.meets_slo and mv.configured.ttft_ms_estimate > 50
    assert any(w.path == "slo.ttftP99Ms" for w in stack.warnings)


def test_one_set_of_thresholds():
    import components.migration.triggers as triggers
    assert tiering.NODES_SMALL_MAX == 1
    assert not hasattr(triggers, "TRIGGERS"), "migrate check has no thresholds of its own"
