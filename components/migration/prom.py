"""Gate evaluation against Prometheus's HTTP API for `tierscale migrate run`.

Each gate is read as its recording rule (`tierscale:migration:<name>`) when Prometheus has
that rule loaded with the same expression, else as its own PromQL, through
`/api/v1/query`. An empty result or NaN is "no data": it never passes a gate.

The comparison gates (error ratio, TTFT change) divide by or subtract the source's live
figures. Once the source serves nothing (the 100% step, after one window) those are NaN, so
the source's terms are measured once before the first shift (the baseline, kept in the
journal) and substituted for the live ones whenever the live source has no data.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import httpx

from components.migration import gates as gate_defs


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout_s)

    def _get(self, path: str, **params) -> dict:
        try:
            reply = self.client.get(f"{self.url}{path}", params=params)
            body = reply.json()
        except (httpx.HTTPError, ValueError) as e:
            raise PrometheusError(f"{self.url}{path}: {e}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"{self.url}{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> Optional[float]:
        """The instant value of a one-series expression; None when empty or NaN."""
        data = self._get("/api/v1/query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            value = float(result[1])
        elif not result:
            return None
        else:
            value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def recording_rules(self) -> dict[str, str]:
        """Loaded recording rules: record name -> expression."""
        out = {}
        for group in self._get("/api/v1/rules", type="record").get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("type") == "recording":
                    out[rule["name"]] = rule["query"]
        return out


@dataclass
class GateResult:
    gate: str
    value: Optional[float]
    op: str
    threshold: float
    unit: str
    holds: bool
    read: str  # "record", "promql" or "promql+baseline"
    at: float  # epoch seconds
    error: Optional[str] = None

    def describe(self) -> str:
        shown = "no data" if self.value is None else f"{self.value:.4g}"
        return f"{self.gate} = {shown} {self.unit} (pass when {self.op} {self.threshold:g}{'; ' + self.error if self.error else ''})"

    def to_json(self) -> dict:
        return asdict(self)


def _source_terms(src_selector: str, window: str) -> dict[str, str]:
    """The source-only sub-expressions the gates are built from (gates.py's own builders)."""
    return {
        "ttft_p99_seconds": gate_defs._p99("vllm:time_to_first_token_seconds", src_selector, window),
        "tpot_p99_seconds": gate_defs._p99("vllm:request_time_per_output_token_seconds", src_selector, window),
        "error_ratio": gate_defs._error_ratio(src_selector, window),
    }


class GateEvaluator:
    def __init__(self, prom: Prometheus, gate_list: list[gate_defs.Gate], src_selector: str, window: str,
                 baseline: Optional[dict[str, Optional[float]]] = None):
        self.prom, self.gates = prom, gate_list
        self.terms = {k: v for k, v in _source_terms(src_selector, window).items()
                      if any(v in g.promql for g in gate_list)}
        self.baseline = dict(baseline or {})
        try:
            rules = prom.recording_rules()
        except PrometheusError:
            rules = {}
        self.use_record = {g.name: _same_expr(rules.get(g.record), g.promql) for g in gate_list}

    def measure_baseline(self) -> dict[str, Optional[float]]:
        self.baseline = {name: self.prom.query(expr) for name, expr in self.terms.items()}
        return self.baseline

    def _with_baseline(self, gate: gate_defs.Gate) -> Optional[str]:
        expr, used = gate.promql, False
        for name, term in self.terms.items():
            if term in expr and self.baseline.get(name) is not None:
                expr, used = expr.replace(term, f"vector({self.baseline[name]!r})"), True
        return expr if used else None

    def evaluate_one(self, gate: gate_defs.Gate) -> GateResult:
        read, error, value = "promql", None, None
        try:
            if self.use_record.get(gate.name):
                read, value = "record", self.prom.query(gate.record)
            if value is None:
                read, value = "promql", self.prom.query(gate.promql)
            if value is None and (fallback := self._with_baseline(gate)):
                read, value = "promql+baseline", self.prom.query(fallback)
        except PrometheusError as e:
            error = str(e)
        return GateResult(gate.name, value, gate.op, gate.threshold, gate.unit, gate.holds(value), read, time.time(), error)

    def evaluate(self) -> list[GateResult]:
        return [self.evaluate_one(g) for g in self.gates]


def _same_expr(loaded: Optional[str], promql: str) -> bool:
    # Prometheus prints a rule's expression re-formatted; compare without whitespace.
    return loaded is not None and "".join(loaded.split()) == "".join(promql.split())


def gate_from_json(data: dict) -> gate_defs.Gate:
    return gate_defs.Gate(data["name"], data["promql"], data["op"], data["threshold"], data["unit"], data["why"])
