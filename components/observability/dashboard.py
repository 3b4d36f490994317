"""The Grafana dashboard every tier provisions (a file on the small tier, a sidecar ConfigMap
on the medium tier). Panels use only names from `metrics.py`."""

from __future__ import annotations

import json

from components.observability.metrics import metric

DASHBOARD_UID = "tierscale-serving"
DATASOURCE_UID = "prometheus"
_SEL = '{model=~"$model"}'


def _hq(q: float, hist: str) -> str:
    return f"histogram_quantile({q}, sum by (le, model) (rate({metric(hist)}_bucket{_SEL}[5m])))"


# (title, unit, [(legend, expr)])
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Time to first token", "s", [(f"p{int(q * 100)} {{{{model}}}}", _hq(q, "vllm:time_to_first_token_seconds"))
                                  for q in (0.5, 0.9, 0.99)]),
    ("Time per output token", "s", [(f"p{int(q * 100)} {{{{model}}}}", _hq(q, "vllm:request_time_per_output_token_seconds"))
                                    for q in (0.5, 0.9, 0.99)]),
    ("End-to-end latency", "s", [(f"p{int(q * 100)} {{{{model}}}}", _hq(q, "vllm:e2e_request_latency_seconds"))
                                 for q in (0.5, 0.9, 0.99)]),
    ("Requests running / waiting", "short", [
        ("running {{model}}", f"sum by (model) ({metric('vllm:num_requests_running')}{_SEL})"),
        ("waiting {{model}}", f"sum by (model) ({metric('vllm:num_requests_waiting')}{_SEL})"),
    ]),
    ("KV-cache usage", "percentunit", [
        ("{{instance}}", f"max by (instance) ({metric('vllm:kv_cache_usage_perc')}{_SEL})"),
    ]),
    ("Prefix-cache hit rate", "percentunit", [
        ("{{model}}", f"sum by (model) (rate({metric('vllm:prefix_cache_hits_total')}{_SEL}[5m]))"
                      f" / sum by (model) (rate({metric('vllm:prefix_cache_queries_total')}{_SEL}[5m]))"),
    ]),
    ("Token throughput", "short", [
        ("generated {{model}}", f"sum by (model) (rate({metric('vllm:generation_tokens_total')}{_SEL}[5m]))"),
        ("prompt {{model}}", f"sum by (model) (rate({metric('vllm:prompt_tokens_total')}{_SEL}[5m]))"),
    ]),
    ("API error rate (5xx)", "percentunit", [
        ("{{model}}", f'sum by (model) (rate({metric("http_requests_total")}{{model=~"$model", status="5xx"}}[5m]))'
                      f" / sum by (model) (rate({metric('http_requests_total')}{_SEL}[5m]))"),
    ]),
    ("GPU utilisation", "percent", [("{{instance}} gpu {{gpu}}", metric("DCGM_FI_DEV_GPU_UTIL"))]),
    ("GPU memory used", "decmbytes", [("{{instance}} gpu {{gpu}}", metric("DCGM_FI_DEV_FB_USED"))]),
    ("GPU temperature", "celsius", [("{{instance}} gpu {{gpu}}", metric("DCGM_FI_DEV_GPU_TEMP"))]),
    ("GPU power", "watt", [("{{instance}} gpu {{gpu}}", metric("DCGM_FI_DEV_POWER_USAGE"))]),
]


def expressions() -> list[str]:
    return [expr for _, _, targets in PANELS for _, expr in targets]


def dashboard() -> dict:
    ds = {"type": "prometheus", "uid": DATASOURCE_UID}
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1,
            "type": "timeseries",
            "title": title,
            "datasource": ds,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + j), "datasource": ds, "expr": expr, "legendFormat": legend}
                for j, (legend, expr) in enumerate(targets)
            ],
        })
    return {
        "uid": DASHBOARD_UID,
        "title": "tierscale / LLM serving",
        "tags": ["tierscale", "vllm"],
        "schemaVersion": 39,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{
            "name": "model", "type": "query", "datasource": ds, "includeAll": True, "multi": True,
            "query": {"query": f"label_values({metric('vllm:num_requests_running')}, model)", "refId": "model"},
            "refresh": 2, "current": {"text": "All", "value": "$__all"}, "allValue": ".*",
        }]},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"
