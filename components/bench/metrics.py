"""From per-request outcomes to the figures `vllm bench serve` reports, and the SLO gates.

- TTFT, E2E: per successful request; ITL: every gap between content chunks of every request;
  TPOT: (E2E - TTFT) / (output tokens - 1) per request with 2+ tokens, then aggregated.
- mean, p50, p90, p99 in milliseconds (linear interpolation between order statistics, as numpy
  and vLLM do); None when there is nothing to aggregate.
- requests = requests sent in the measured phase and answered or failed; errors = those that
  failed (HTTP status, connection, stream error, no content); error_rate = errors / requests.
- throughput over the measured wall time (first send to last answer): requests_per_s and
  output_tokens_per_s count successful requests; goodput_requests_per_s counts those whose own
  TTFT and TPOT both meet the SLO thresholds (a one-token answer has no TPOT and meets it).
- SLO gates: TTFT p99 <= threshold, TPOT p99 <= threshold, error_rate <= max; a gate with no
  value (nothing succeeded) fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the client imports Locust (gevent patching): only when a run starts
    from components.bench.client import RunResult


@dataclass(frozen=True)
class Slo:
    ttft_p99_ms: Optional[float] = None
    tpot_p99_ms: Optional[float] = None
    max_error_rate: Optional[float] = None


def stats_ms(values_s: list[float]) -> dict:
    import numpy as np

    if not values_s:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    a = np.asarray(values_s, dtype=float) * 1000.0
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean": round(float(a.mean()), 3), "p50": round(float(p50), 3), "p90": round(float(p90), 3),
            "p99": round(float(p99), 3)}


def summarize(result: "RunResult", slo: Slo) -> dict:
    outcomes = result.outcomes
    ok = [o for o in outcomes if o.ok]
    errors = len(outcomes) - len(ok)
    wall = max(result.wall_s, 1e-9)
    ttft = [o.ttft for o in ok]
    tpot = [o.tpot for o in ok if o.tpot is not None]
    itl = [gap for o in ok for gap in o.itl]
    e2e = [o.e2e for o in ok]
    output_tokens = sum(o.output_tokens for o in ok)
    prompt_tokens = [o.prompt_tokens for o in ok if o.prompt_tokens is not None]

    def good(o) -> bool:
        return ((slo.ttft_p99_ms is None or o.ttft * 1000 <= slo.ttft_p99_ms)
                and (slo.tpot_p99_ms is None or o.tpot is None or o.tpot * 1000 <= slo.tpot_p99_ms))

    summary = {
        "requests": len(outcomes),
        "completed": len(ok),
        "errors": errors,
        "error_rate": round(errors / len(outcomes), 6) if outcomes else 0.0,
        "duration_s": round(result.wall_s, 3),
        "ttft_ms": stats_ms(ttft),
        "tpot_ms": stats_ms(tpot),
        "itl_ms": stats_ms(itl),
        "e2e_ms": stats_ms(e2e),
        "requests_per_s": round(len(ok) / wall, 3),
        "output_tokens_per_s": round(output_tokens / wall, 3),
        "goodput_requests_per_s": round(sum(1 for o in ok if good(o)) / wall, 3),
        "output_tokens": output_tokens,
        "prompt_tokens": sum(prompt_tokens) if prompt_tokens else None,
        "tokens_from_usage": bool(ok) and all(o.usage_reported for o in ok),
        "warmup_errors": result.warmup_errors,
        "stopped": result.stopped,
        "error_samples": sorted({o.error for o in outcomes if not o.ok})[:5],
    }
    summary["slo"] = gates(summary, slo)
    summary["pass"] = all(g["pass"] for g in summary["slo"].values()) and result.stopped is None
    return summary


def gates(summary: dict, slo: Slo) -> dict:
    out = {}
    for name, value, threshold in (
        ("ttft_p99_ms", summary["ttft_ms"]["p99"], slo.ttft_p99_ms),
        ("tpot_p99_ms", summary["tpot_ms"]["p99"], slo.tpot_p99_ms),
        ("error_rate", summary["error_rate"], slo.max_error_rate),
    ):
        if threshold is None:
            continue
        out[name] = {"value": value, "threshold": threshold, "pass": value is not None and value <= threshold}
    return out
