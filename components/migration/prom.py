"""Gate evaluation against Prometheus's HTTP API for `tierscale migrate run`.

Each gate is read as its recording rule (`tierscale:migration:<name>`) when Prometheus has
that rule loaded with the same expression (compared as parsed PromQL: Prometheus prints a
loaded rule re-formatted, a `60s` window as `1m`), else as its own PromQL, through
`/api/v1/query`. An empty result or NaN is "no data": it never passes a gate.

A comparison gate (ttft_p99_change: the destination's p99 over the source's) is judged only
when both sides have `gate.min_samples` requests in the window (gates.MIN_COMPARISON_SAMPLES,
with why); with fewer it is journaled as `skipped` and holds, while the absolute SLO gates
judge the destination alone. The source's count is the live one, or the baseline's when the
baseline stands in for the idle source.

The comparison gates (error ratio, TTFT change) divide by or subtract the source's live
figures. Once the source serves nothing (the 100% step, after one window) those are NaN, so
the source's terms are measured once before the first shift (the baseline, kept in the
journal) and substituted for the live ones whenever the live source has no data.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Optional

import httpx
import promql_parser

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
    # A comparison gate: the requests each side had in the window ({"destination": n, "source": n}),
    # and why it was not judged (too few samples) when it was not.
    samples: Optional[dict] = None
    skipped: Optional[str] = None

    def describe(self) -> str:
        shown = "no data" if self.value is None else f"{self.value:.4g}"
        notes = "; ".join(x for x in (self.error, self.skipped and f"not judged: {self.skipped}") if x)
        return f"{self.gate} = {shown} {self.unit} (pass when {self.op} {self.threshold:g}{'; ' + notes if notes else ''})"

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
        # The source's request count behind each comparison gate's source term, for when the
        # baseline stands in for the idle source.
        for g in self.gates:
            if g.samples:
                self.baseline[f"{g.name}:source_samples"] = self.prom.query(g.samples[1])
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
        samples = skipped = None
        if gate.samples and error is None:
            try:
                samples, skipped = self._too_few(gate, read)
            except PrometheusError as e:
                error = str(e)
        holds = gate.holds(value) or skipped is not None
        return GateResult(gate.name, value, gate.op, gate.threshold, gate.unit, holds, read, time.time(), error,
                          samples, skipped)

    def _too_few(self, gate: gate_defs.Gate, read: str) -> tuple[dict, Optional[str]]:
        """({"destination": n, "source": n}, why the gate is not judged, or None)."""
        dst = self.prom.query(gate.samples[0])
        src = (self.baseline.get(f"{gate.name}:source_samples") if read == "promql+baseline"
               else self.prom.query(gate.samples[1]))
        counts = {"destination": None if dst is None else round(dst),
                  "source": None if src is None else round(src)}
        short = [f"{side} {n or 0}" for side, n in counts.items() if (n or 0) < gate.min_samples]
        if not short:
            return counts, None
        return counts, (f"fewer than {gate.min_samples} requests in the window ({', '.join(short)}): a p99 of so "
                        "few is their slowest request; the absolute SLO gates judge the destination")

    def evaluate(self) -> list[GateResult]:
        return [self.evaluate_one(g) for g in self.gates]


def _same_expr(loaded: Optional[str], promql: str) -> bool:
    """Whether the rule Prometheus has loaded is the gate's expression. Prometheus prints a loaded
    rule re-formatted (/api/v1/rules `query`: the parsed expression's String()): spacing and
    parentheses of its own, and every duration as prometheus/common model.Duration.String() writes
    it, `60s` as `1m`, `90s` as `1m30s`, `3600s` as `1h`. Both are compared as parsed PromQL (the
    AST holds each duration as a length of time); an expression promql-parser cannot read is
    compared as text with its durations normalised the same way."""
    if loaded is None:
        return False
    try:
        return repr(promql_parser.parse(loaded)) == repr(promql_parser.parse(promql))
    except (ValueError, TypeError):
        return _normalised(loaded) == _normalised(promql)


# A PromQL duration: one or more <number><unit>, units from years down to milliseconds.
_DURATION = re.compile(r"(?<![\w.])((?:\d+(?:ms|[smhdwy]))+)(?![\w.])")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


def prometheus_duration(text: str) -> str:
    """A PromQL duration as Prometheus prints it: prometheus/common model/time.go
    Duration.String() (years and weeks only when they divide it exactly, then d, h, m, s, ms;
    0 is "0s")."""
    ms = sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))
    if ms == 0:
        return "0s"
    out = ""
    for unit, exact in (("y", True), ("w", True), ("d", False), ("h", False), ("m", False), ("s", False), ("ms", False)):
        mult = _UNIT_MS[unit]
        if exact and ms % mult:
            continue
        if ms // mult:
            out += f"{ms // mult}{unit}"
            ms -= ms // mult * mult
    return out


def _normalised(expr: str) -> str:
    """Whitespace dropped, durations inside [...] and after `offset` as Prometheus prints them.
    (String literals are not told apart: a fallback for what the parser cannot read.)"""
    return "".join(_DURATION.sub(lambda m: prometheus_duration(m.group(1)), expr).split())


def gate_from_json(data: dict) -> gate_defs.Gate:
    return gate_defs.Gate(data["name"], data["promql"], data["op"], data["threshold"], data["unit"], data["why"],
                          tuple(data.get("samples") or ()), int(data.get("min_samples") or 0))
