"""SLO gates for a traffic shift: PromQL over vLLM's own histograms and HTTP counter.

One mechanism for tier migrations, model upgrades and canaries: the new deployment ("dst") is
judged against the destination stack's SLOs and against the old deployment ("src") measured
live in the same Prometheus. Each gate is a recording rule `tierscale:migration:<name>` (so
`promtool check rules` / `promtool test rules` check the expression, and the run reads one
series) plus a pass condition `value <op> threshold`.

The selectors are PromQL label matchers that tell the two deployments apart (the small tier's
jobs, the medium tier's `model`/`namespace` labels, a region label on the large tier); the
tier's traffic back end supplies them.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.observability.metrics import metric

WINDOW = "5m"
# P1/P2 criteria (whitepaper ch. 4.6): error rate no higher than before, latency change < 10%.
MAX_LATENCY_INCREASE = 1.10
ERROR_RATE_TOLERANCE = 0.001  # absolute: 0.1 percentage points above the source's error ratio
# A comparison of two p99s (ttft_p99_change) is judged only when each side has at least this
# many requests in the gate window. The p99 of n samples is the order statistic of rank
# ceil(0.99 n): below 100 samples that is the slowest request, so the ratio compares one
# request with another, not two tails (the warm-up's 50 requests, 8 at once, measured 1.4x-3.3x
# the source's steady p99 on real CPU engines that were both healthy). At 100 or more at least
# one request lies above the estimate. This is a floor, not a confidence bound: the absolute
# SLO gates (ttft_p99_seconds, tpot_p99_seconds) judge the destination at every evaluation
# whatever its sample count, and a p99 over few samples (its maximum) only makes them stricter.
MIN_COMPARISON_SAMPLES = 100


@dataclass(frozen=True)
class Gate:
    name: str
    promql: str
    op: str  # "<=": the gate holds while the value is at most the threshold
    threshold: float
    unit: str
    why: str
    # A comparison gate: the PromQL of the request count in the window on each side
    # (destination, source), and the count both need before the gate is judged (see
    # MIN_COMPARISON_SAMPLES). Empty: the gate is always judged.
    samples: tuple[str, ...] = ()
    min_samples: int = 0

    @property
    def record(self) -> str:
        return f"tierscale:migration:{self.name}"

    def holds(self, value: float | None) -> bool:
        """No data is a failure: a gate that cannot see the new deployment does not pass it."""
        return value is not None and value <= self.threshold

    def to_json(self) -> dict:
        return {"name": self.name, "promql": self.promql, "threshold": self.threshold, "unit": self.unit,
                "op": self.op, "record": self.record, "why": self.why,
                **({"samples": list(self.samples), "min_samples": self.min_samples} if self.samples else {})}


def _p99(hist: str, selector: str, window: str = WINDOW) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({metric(hist)}_bucket{selector}[{window}])))"


def _samples(hist: str, selector: str, window: str = WINDOW) -> str:
    """Observations of a histogram in the window (requests, for TTFT): its +Inf bucket's increase."""
    inner = selector[1:-1]
    return f'sum(increase({metric(hist)}_bucket{{{inner}{"," if inner else ""}le="+Inf"}}[{window}]))'


def _error_ratio(selector: str, window: str = WINDOW) -> str:
    http = metric("http_requests_total")
    inner = selector[1:-1]
    errors = f'{{{inner}{"," if inner else ""}handler=~"/v1/.*",status="5xx"}}'
    total = f'{{{inner}{"," if inner else ""}handler=~"/v1/.*"}}'
    return f"(sum(rate({http}{errors}[{window}])) or vector(0)) / sum(rate({http}{total}[{window}]))"


def gates(dst_selector: str, src_selector: str, ttft_p99_ms: float, tpot_p99_ms: float,
          window: str = WINDOW) -> list[Gate]:
    """The gates a step must pass: the destination's SLOs, and no regression against the source.
    `window` is the range of every rate() (a PromQL duration; tests use seconds)."""
    ttft_dst = _p99("vllm:time_to_first_token_seconds", dst_selector, window)
    tpot_dst = _p99("vllm:request_time_per_output_token_seconds", dst_selector, window)
    return [
        Gate("ttft_p99_seconds", ttft_dst, "<=", ttft_p99_ms / 1000, "s",
             "TTFT p99 of the new deployment within the destination's slo.ttftP99Ms"),
        Gate("tpot_p99_seconds", tpot_dst, "<=", tpot_p99_ms / 1000, "s/token",
             "TPOT p99 of the new deployment within the destination's slo.tpotP99Ms"),
        Gate("error_ratio_increase",
             f"({_error_ratio(dst_selector, window)}) - ({_error_ratio(src_selector, window)} or vector(0))",
             "<=", ERROR_RATE_TOLERANCE, "ratio", "error rate no higher than the source's (P1: no increase)"),
        Gate("ttft_p99_change", f"({ttft_dst}) / ({_p99('vllm:time_to_first_token_seconds', src_selector, window)})",
             "<=", MAX_LATENCY_INCREASE, "ratio", "TTFT p99 at most 10% above the source's (P1: latency change < 10%); "
             f"judged once both sides have {MIN_COMPARISON_SAMPLES} requests in the window",
             samples=(_samples("vllm:time_to_first_token_seconds", dst_selector, window),
                      _samples("vllm:time_to_first_token_seconds", src_selector, window)),
             min_samples=MIN_COMPARISON_SAMPLES),
    ]


def recording_rules(gate_list: list[Gate]) -> dict:
    """A Prometheus rule file with every gate as a recording rule."""
    return {"groups": [{"name": "tierscale-migration-gates",
                        "rules": [{"record": g.record, "expr": g.promql} for g in gate_list]}]}
