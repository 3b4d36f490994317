"""Migration gates: the PromQL parses, names only listed metrics, passes `promtool check rules`
as recording rules, and `promtool test rules` shows every gate holding and failing on series
shaped like vLLM's (histogram buckets, the HTTP counter)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

import pytest

from components.migration import gates as g
from components.migration.prom import GateEvaluator, _normalised, _same_expr, prometheus_duration
from components.observability.metrics import KNOWN_SERIES
from components.observability.promql import referenced_metrics

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
GATES = g.gates('{deployment="dst"}', '{deployment="src"}', ttft_p99_ms=500, tpot_p99_ms=100)
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")


def histogram(name: str, deployment: str, seconds: str) -> list[dict]:
    """10 observations a minute, all in the bucket whose bound is `seconds`."""
    out = []
    for le in BUCKETS:
        counts = le == "+Inf" or float(le) >= float(seconds)
        out.append({"series": f'{name}_bucket{{deployment="{deployment}",le="{le}"}}',
                    "values": "0+10x15" if counts else "0x15"})
    return out


def http(deployment: str, errors_per_min: int) -> list[dict]:
    return [
        {"series": f'http_requests_total{{deployment="{deployment}",handler="/v1/chat/completions",status="2xx"}}',
         "values": f"0+{100 - errors_per_min}x15"},
        {"series": f'http_requests_total{{deployment="{deployment}",handler="/v1/chat/completions",status="5xx"}}',
         "values": f"0+{errors_per_min}x15"},
    ]


TTFT, TPOT = "vllm:time_to_first_token_seconds", "vllm:request_time_per_output_token_seconds"
# gate -> (series where it holds, series where it fails)
SCENARIOS = {
    "ttft_p99_seconds": (histogram(TTFT, "dst", "0.25"), histogram(TTFT, "dst", "1")),
    "tpot_p99_seconds": (histogram(TPOT, "dst", "0.05"), histogram(TPOT, "dst", "0.25")),
    "error_ratio_increase": (http("dst", 0) + http("src", 0), http("dst", 5) + http("src", 0)),
    "ttft_p99_change": (histogram(TTFT, "dst", "0.25") + histogram(TTFT, "src", "0.25"),
                        histogram(TTFT, "dst", "0.5") + histogram(TTFT, "src", "0.25")),
}


def test_every_gate_parses_and_uses_listed_metrics():
    for gate in GATES:
        assert referenced_metrics(gate.promql) <= KNOWN_SERIES, gate.name
        for expr in gate.samples:
            assert referenced_metrics(expr) <= KNOWN_SERIES, gate.name


# What a real Prometheus (2.42.0, Debian 12's) answers in /api/v1/rules `query` for the gates built
# with a 60s, 90s, 3600s and 1500ms window (captured from a running server; its rule printer is
# promql's String() with durations as prometheus/common model.Duration.String()).
PROM_CHANGE = ('(histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{deployment="dst"}[@W])))) '
               '/ (histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{deployment="src"}[@W]))))')
PROM_ERRORS_60S = ('((sum(rate(http_requests_total{deployment="dst",handler=~"/v1/.*",status="5xx"}[1m])) or vector(0)) / '
                   'sum(rate(http_requests_total{deployment="dst",handler=~"/v1/.*"}[1m]))) - ((sum(rate(http_requests_total'
                   '{deployment="src",handler=~"/v1/.*",status="5xx"}[1m])) or vector(0)) / sum(rate(http_requests_total'
                   '{deployment="src",handler=~"/v1/.*"}[1m])) or vector(0))')
PRINTED = {"60s": "1m", "90s": "1m30s", "3600s": "1h", "1500ms": "1s500ms", "50s": "50s", "5m": "5m"}


def _gate(name: str, window: str) -> g.Gate:
    return next(x for x in g.gates('{deployment="dst"}', '{deployment="src"}', 500, 100, window) if x.name == name)


@pytest.mark.parametrize("window", sorted(PRINTED))
def test_a_loaded_rule_is_the_gate_as_prometheus_prints_its_durations(window):
    printed = PROM_CHANGE.replace("@W", PRINTED[window])
    gate = _gate("ttft_p99_change", window)
    assert prometheus_duration(window) == PRINTED[window]
    assert _same_expr(printed, gate.promql)
    assert _normalised(printed) == _normalised(gate.promql)  # the fallback for what the parser cannot read


def test_a_loaded_rule_with_another_window_is_not_the_gate():
    assert not _same_expr(PROM_CHANGE.replace("@W", "1m"), _gate("ttft_p99_change", "90s").promql)
    # promql-parser's own printer writes 1500ms as "1s"; the parsed durations still differ.
    assert not _same_expr(PROM_CHANGE.replace("@W", "1s"), _gate("ttft_p99_change", "1500ms").promql)
    assert not _same_expr(PROM_CHANGE.replace("@W", "1m").replace('"src"', '"other"'),
                          _gate("ttft_p99_change", "60s").promql)
    assert not _same_expr(None, _gate("ttft_p99_change", "60s").promql)


def test_the_run_reads_the_recording_rules_with_a_60s_window():
    """With --gate-window 60s the run used to fall back to plain PromQL for every gate."""
    gate_list = [_gate("ttft_p99_change", "60s"), _gate("error_ratio_increase", "60s")]

    class Loaded:
        def recording_rules(self):
            return {gate_list[0].record: PROM_CHANGE.replace("@W", "1m"), gate_list[1].record: PROM_ERRORS_60S}

    ev = GateEvaluator(Loaded(), gate_list, '{deployment="src"}', "60s")
    assert ev.use_record == {"ttft_p99_change": True, "error_ratio_increase": True}


def test_gates_pass_promtool_check_rules(tmp_path):
    rules = tmp_path / "gates.yml"
    rules.write_text(yaml.safe_dump(g.recording_rules(GATES), sort_keys=False))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert proc.returncode == 0 and f"SUCCESS: {len(GATES)} rules found" in proc.stdout, proc.stdout + proc.stderr


def _case(gate: g.Gate, series: list[dict], holds: int) -> dict:
    return {"interval": "1m", "input_series": series, "promql_expr_test": [{
        "expr": f"{gate.record} {gate.op} bool {gate.threshold}", "eval_time": "10m",
        "exp_samples": [{"labels": "{}", "value": holds}]}]}


def test_every_gate_holds_and_fails_in_promtool(tmp_path):
    assert set(SCENARIOS) == {gate.name for gate in GATES}
    (tmp_path / "gates.yml").write_text(yaml.safe_dump(g.recording_rules(GATES), sort_keys=False))
    tests = []
    for gate in GATES:
        good, bad = SCENARIOS[gate.name]
        tests += [_case(gate, good, 1), _case(gate, bad, 0)]
    (tmp_path / "gates_test.yml").write_text(yaml.safe_dump({"rule_files": ["gates.yml"], "tests": tests}, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "test", "rules", "gates_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_harness_can_fail(tmp_path):
    """A swapped expectation must make promtool fail, or the test above proves nothing."""
    gate = GATES[0]
    good, _ = SCENARIOS[gate.name]
    (tmp_path / "gates.yml").write_text(yaml.safe_dump(g.recording_rules(GATES), sort_keys=False))
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": ["gates.yml"], "tests": [_case(gate, good, 0)]}))
    proc = subprocess.run([PROMTOOL, "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0


def test_no_data_never_passes():
    assert not GATES[0].holds(None) and GATES[0].holds(0.1) and not GATES[0].holds(0.9)
