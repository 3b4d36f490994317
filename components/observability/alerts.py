"""Alert rules, defined once. The small tier writes them to a Prometheus rule file, the medium
tier wraps the same groups in a PrometheusRule, bare metal ships the file to Prometheus.

Latency thresholds come from the stack's `slo`; the rest are fixed operational limits.
Every alert has firing and non-firing `promtool test rules` cases in
tests/observability/alerts_test.yml.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.observability.metrics import metric
from components.spec.model import SloSpec

KV_CACHE_FULL_RATIO = 0.95
ERROR_RATIO = 0.01
WAITING_QUEUE_MIN = 10  # whitepaper's queue-depth threshold: below it a queue is normal
GPU_TEMP_MAX_C = 85
GPU_UTIL_MIN_PERCENT = 20
# Large tier: the surviving regions' mean KV-cache use, with the largest region's load on them.
N_PLUS_ONE_KV_RATIO = 0.9

# Jobs each tier scrapes; TargetDown covers exactly these so it never double-alerts with a
# cluster's own kube-prometheus-stack rules.
SMALL_TIER_JOBS = "vllm|nginx|node|dcgm"


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def as_rule(self) -> dict:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "team": "inference"},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _quantile(q: float, hist: str, by: str = "model") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric(hist)}_bucket[5m])))"


def alert_rules(slo: SloSpec, jobs_regex: str = SMALL_TIER_JOBS) -> list[AlertRule]:
    ttft_s = slo.ttft_p99_ms / 1000
    tpot_s = slo.tpot_p99_ms / 1000
    waiting = metric("vllm:num_requests_waiting")
    http = metric("http_requests_total")
    return [
        AlertRule(
            "VllmTtftP99High", f"{_quantile(0.99, 'vllm:time_to_first_token_seconds')} > {ttft_s:g}", "5m", "warning",
            f"TTFT p99 above {slo.ttft_p99_ms} ms for {{{{ $labels.model }}}}",
            f"p99 time to first token has been above the {slo.ttft_p99_ms} ms SLO for 5 minutes. "
            "Queueing or long prompts: check requests waiting and KV-cache usage.",
        ),
        AlertRule(
            "VllmTpotP99High", f"{_quantile(0.99, 'vllm:request_time_per_output_token_seconds')} > {tpot_s:g}", "10m",
            "warning", f"TPOT p99 above {slo.tpot_p99_ms} ms/token for {{{{ $labels.model }}}}",
            f"p99 time per output token has been above {slo.tpot_p99_ms} ms for 10 minutes; batches are "
            "too large for the GPUs. Lower maxNumSeqs or add replicas.",
        ),
        AlertRule(
            "VllmKvCacheNearlyFull",
            f"max by (model, instance) ({metric('vllm:kv_cache_usage_perc')}) > {KV_CACHE_FULL_RATIO:g}", "5m",
            "warning", "KV cache above 95% on {{ $labels.instance }}",
            "vLLM preempts requests when the KV cache is full. "
            "Add replicas, lower maxModelLen or use an fp8 KV cache.",
        ),
        AlertRule(
            "VllmErrorRateHigh",
            f'sum by (model) (rate({http}{{handler=~"/v1/.*", status="5xx"}}[5m]))'
            f' / sum by (model) (rate({http}{{handler=~"/v1/.*"}}[5m])) > {ERROR_RATIO:g}',
            "5m", "critical", "More than 1% of API requests fail for {{ $labels.model }}",
            "More than 1% of /v1 requests returned 5xx for 5 minutes. Check the replicas' logs.",
        ),
        AlertRule(
            "VllmRequestsWaitingGrowing",
            f"sum by (model) ({waiting}) > {WAITING_QUEUE_MIN} and sum by (model) (deriv({waiting}[10m])) > 0",
            "10m", "warning", "Request queue keeps growing for {{ $labels.model }}",
            f"More than {WAITING_QUEUE_MIN} requests wait and the queue has grown for 10 minutes: "
            "capacity is below demand. Scale out (the medium tier's KEDA does this itself).",
        ),
        AlertRule(
            "TierscaleTargetDown", f'{metric("up")}{{job=~"{jobs_regex}"}} == 0', "2m", "critical",
            "{{ $labels.job }} target {{ $labels.instance }} is down",
            "Prometheus has not scraped {{ $labels.instance }} for 2 minutes.",
        ),
        AlertRule(
            "GpuTemperatureHigh", f"max by (instance, gpu) ({metric('DCGM_FI_DEV_GPU_TEMP')}) > {GPU_TEMP_MAX_C}", "5m",
            "warning", "GPU {{ $labels.gpu }} on {{ $labels.instance }} above 85 C",
            "Expect clock throttling above 85 C. Check cooling and fans.",
        ),
        AlertRule(
            "GpuXidError", f"max by (instance, gpu) (max_over_time({metric('DCGM_FI_DEV_XID_ERRORS')}[5m])) > 0", "0m",
            "critical", "XID error on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
            "The driver reported an XID error. Drain the node and check `dmesg`; see NVIDIA's XID catalog.",
        ),
        AlertRule(
            "GpuEccDoubleBitErrors",
            f"sum by (instance, gpu) (increase({metric('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL')}[10m])) > 0", "0m",
            "critical", "Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
            "Double-bit ECC errors corrupt results; drain the node and reset or replace the GPU.",
        ),
        AlertRule(
            "GpuUtilizationLow",
            f"avg by (instance, gpu) (avg_over_time({metric('DCGM_FI_DEV_GPU_UTIL')}[30m])) < {GPU_UTIL_MIN_PERCENT}",
            "1h", "info", "GPU {{ $labels.gpu }} on {{ $labels.instance }} below 20% for an hour",
            "The deployment is over-provisioned for its load. "
            "Lower replicas or autoscaling.minReplicas.",
        ),
        # Large tier (multi-region): series carry `region` (ServiceMonitor relabeling and
        # Prometheus externalLabels); both rules are quiet where no series has a region label.
        AlertRule(
            "TierscaleRegionUnhealthy", f'max by (region) ({metric("up")}{{job=~"vllm-.*", region!=""}}) == 0',
            "1m", "critical", "No vLLM replica answers in region {{ $labels.region }}",
            "Every vLLM target of the region is down, so its gateway health check fails and Route 53 / Global "
            "Accelerator sends its traffic to the other regions. Check the region's cluster and gateway.",
        ),
        AlertRule(
            "TierscaleRegionNoNPlusOneHeadroom",
            f'sum by (job) ({metric("vllm:kv_cache_usage_perc")}{{job=~"vllm-.*", region!=""}})'
            f' / (count by (job) ({metric("vllm:kv_cache_usage_perc")}{{job=~"vllm-.*", region!=""}})'
            f' - max by (job) (count by (job, region) ({metric("vllm:kv_cache_usage_perc")}{{job=~"vllm-.*", region!=""}})))'
            f' > {N_PLUS_ONE_KV_RATIO:g}'
            f' and on (job) count by (job) (count by (job, region) ({metric("vllm:kv_cache_usage_perc")}{{job=~"vllm-.*", region!=""}})) > 1',
            "15m", "warning", "{{ $labels.job }} would run out of KV cache without its largest region",
            "With the largest region's load moved to the others, their replicas' KV caches would average above "
            f"{N_PLUS_ONE_KV_RATIO:.0%}: the fleet has no N+1 headroom across regions. Raise maxReplicas outside the "
            "largest region (target.regions[].models[].maxReplicas).",
        ),
    ]


def rule_groups(slo: SloSpec, jobs_regex: str = SMALL_TIER_JOBS) -> list[dict]:
    """Prometheus rule groups (the `groups:` list of a rule file / PrometheusRule spec)."""
    return [{"name": "tierscale-inference", "rules": [r.as_rule() for r in alert_rules(slo, jobs_regex)]}]
