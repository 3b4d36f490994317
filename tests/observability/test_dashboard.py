"""The shared Grafana dashboard: required panels, parseable PromQL over listed metrics only."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from components.observability import dashboard, metrics
from components.observability.promql import referenced_metrics

REQUIRED = ["Time to first token", "Time per output token", "End-to-end latency", "Requests running / waiting",
            "KV-cache usage", "Prefix-cache hit rate", "Token throughput", "GPU utilisation", "GPU memory used",
            "GPU temperature"]


def test_dashboard_has_the_required_panels():
    titles = [p["title"] for p in dashboard.dashboard()["panels"]]
    assert set(REQUIRED) <= set(titles)
    assert all(p["targets"] for p in dashboard.dashboard()["panels"])


def test_every_dashboard_expression_uses_only_listed_metrics():
    for expr in dashboard.expressions():
        used = referenced_metrics(expr)
        assert used and used <= metrics.KNOWN_SERIES, expr


def test_promtool_parses_every_dashboard_expression(tmp_path):
    """promtool has no bare parser; recording rules are parsed and type-checked by `check rules`."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"tierscale:panel_{i}", "expr": expr.replace("$model", ".*")}
        for i, expr in enumerate(dashboard.expressions())]}]}
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "rules", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metric_name_check_rejects_unknown_names():
    assert referenced_metrics('sum(rate(vllm:gpu_cache_usage_perc[5m]))') - metrics.KNOWN_SERIES == {"vllm:gpu_cache_usage_perc"}


def test_dcgm_counters_cover_every_dcgm_metric():
    csv = metrics.dcgm_counters_csv()
    fields = {line.split(",")[0] for line in csv.splitlines() if line and not line.startswith("#")}
    assert fields == {m.name for m in metrics.METRICS.values() if m.source == "dcgm"}
