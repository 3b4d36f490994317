"""Predicted vs published for every row of components/facts/measurements.yaml.

vLLM rows (what tierscale deploys) must be within ±25%, fitted and held-out alike; the MLPerf
(TensorRT-LLM) rows are a cross-check with their own constants and the same bound. Run with -s
to see the table (docs/planner.md's table is written by benchmarks/fit_planner.py --docs).
"""

from __future__ import annotations

import pytest

from benchmarks import fit_planner
from components.planner import calibration, perf

TOLERANCE = 0.25


def test_every_published_measurement_is_predicted_within_25_percent():
    rows = calibration.table()
    assert rows, "measurements.yaml has no rows"
    print()
    print(f"{'measurement':54s} {'engine':13s} {'published':>10s} {'predicted':>10s} {'error':>8s}")
    for r in rows:
        print(f"{r.id:54s} {r.engine:13s} {r.published:>10,.2f} {r.predicted:>10,.2f} {r.error:>+8.1%}"
              + ("  held out" if r.holdout else ""))
    off = [f"{r.id}: predicted {r.predicted:,.2f} vs published {r.published:,.2f} ({r.error:+.1%})"
           for r in rows if abs(r.error) > TOLERANCE]
    assert not off, "\n".join(off)


def test_vllm_rows_cover_gpus_models_and_holdout():
    rows = [r for r in calibration.rows() if r.get("engine") == "vllm" and r["kind"] != "kv_tokens"]
    assert len(rows) >= 10
    assert {r["gpu"] for r in rows} >= {"a100-40gb", "h100-80gb"}
    assert {r["model"] for r in rows} >= {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"}
    held = [r for r in rows if r.get("holdout")]
    assert 3 <= len(held) < len(rows) - 3, "a real held-out set, and enough rows left to fit"


def test_the_check_can_fail_on_a_wrong_constant():
    """A planted wrong constant (half the vLLM bandwidth efficiency) pushes rows past 25%."""
    wrong = perf.engine_constants("vllm").with_values(None, bandwidth=0.4).with_values("ampere", bandwidth=0.4)
    rows = calibration.table({"vllm": wrong})
    assert any(abs(r.error) > TOLERANCE for r in rows if r.engine == "vllm")


def test_engine_is_explicit_and_vllm_is_the_planner_default():
    assert perf.DEFAULT_ENGINE == "vllm"
    for row in calibration.rows():
        assert row.get("engine") in perf.ENGINES, row["id"]
    vllm, trt = perf.engine_constants("vllm").base, perf.engine_constants("tensorrt-llm").base
    assert vllm != trt


def test_fit_never_sees_held_out_rows():
    ids = {r["id"] for r in fit_planner._fit_rows()}
    assert ids and not any(r.get("holdout") and r["id"] in ids for r in calibration.rows())


def test_stored_constants_are_the_fit():
    """measurements.yaml holds what benchmarks/fit_planner.py finds (rerun it with --write)."""
    fitted, _ = fit_planner.fit()
    assert fitted == perf.engine_constants("vllm")


def test_every_row_names_its_source():
    for row in calibration.rows():
        assert row.get("source"), row["id"]
        assert row["published"] > 0


@pytest.mark.parametrize("engine", perf.ENGINES)
@pytest.mark.parametrize("name", ["bandwidth_efficiency", "decode_compute_efficiency", "prefill_compute_efficiency",
                                  "interconnect_efficiency", "overlap", "batch_occupancy"])
def test_efficiencies_are_shares_of_peak(engine, name):
    raw = perf.measurements()["engines"][engine]
    assert 0 <= raw[name] <= 1
    for values in (raw.get("per_generation") or {}).values():
        assert 0 < values.get("bandwidth_efficiency", 0.5) <= 1
