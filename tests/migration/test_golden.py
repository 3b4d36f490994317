"""Golden-set consistency against two live stubs: the same prompts, greedy and seeded; exact
match for the same dtype, token overlap for a quantization change (tolerances are data)."""

from __future__ import annotations

import httpx
import pytest

from components.migration import golden
from tests.support.processes import start_stubs

PROMPTS = [f"golden prompt {i}: explain item {i}" for i in range(12)]


@pytest.fixture(scope="module")
def stubs():
    pair = start_stubs(2, ttft_ms=1, itl_ms=0)
    yield pair
    for s in pair:
        s.kill()


def _drift(stub, share: float) -> None:
    httpx.post(f"http://{stub.address}/stub/control", json={"drift": share}, timeout=5).raise_for_status()


def _check(stubs, tol):
    a, b = stubs
    return golden.check(f"http://{a.address}", a.model, f"http://{b.address}", b.model, PROMPTS, tol, max_tokens=40)


def test_tolerance_by_quantization_change():
    assert golden.tolerance("bf16", "bf16").exact
    assert golden.tolerance("awq", "awq").exact
    assert golden.tolerance("bf16", "fp16").kind == "cast"
    assert golden.tolerance("bf16", "fp8").kind == golden.tolerance("fp16", "int8").kind == "to_8bit"
    assert golden.tolerance("bf16", "awq").kind == "to_4bit"
    assert golden.tolerance("awq", "gptq").kind == "other"
    assert not golden.tolerance("bf16", "fp8").exact and golden.tolerance("bf16", "fp8").min_overlap == 0.90


def test_same_dtype_needs_identical_outputs(stubs):
    _drift(stubs[1], 0.0)
    report = _check(stubs, golden.tolerance("bf16", "bf16"))
    assert report.passed and not report.mismatches, report.describe()
    _drift(stubs[1], 0.05)
    report = _check(stubs, golden.tolerance("bf16", "bf16"))
    print(f"\n{report.describe()}")
    assert not report.passed and report.mismatches


def test_fp16_to_fp8_passes_small_drift_and_fails_large(stubs):
    tol = golden.tolerance("fp16", "fp8")
    _drift(stubs[1], 0.03)
    small = _check(stubs, tol)
    _drift(stubs[1], 0.4)
    large = _check(stubs, tol)
    _drift(stubs[1], 0.0)
    print(f"\n3% drift: {small.describe()}\n40% drift: {large.describe()}")
    assert small.mismatches and small.passed
    assert not large.passed and large.mean_overlap < tol.min_overlap


def test_drift_is_deterministic_per_prompt(stubs):
    _drift(stubs[1], 0.3)
    tol = golden.tolerance("fp16", "fp8")
    first, second = _check(stubs, tol), _check(stubs, tol)
    _drift(stubs[1], 0.0)
    assert first.overlaps == second.overlaps
