"""`tierscale plan` as text a person reads: a one-line answer, the figures behind it, the
alternatives, and the stack YAML to paste. Plain text wrapped to a width (80 by default), with
no line cut: long words (commands, keys) are never broken. `--json` is Plan.to_json(), not this.
"""

from __future__ import annotations

import textwrap
from typing import Optional

import yaml

from components.planner.plan import Plan

UNBOUNDED = 1e9  # what Plan stores for an unbounded estimate (JSON has no infinity)

# target.kind a stack of each tier starts from (components/tiers.py lists every accepted kind)
TARGET_KIND = {"small": "docker-host", "medium": "eks", "large": "multi-region"}


def ms(value: float, digits: int = 0) -> str:
    if value >= UNBOUNDED:
        return "unbounded"
    return f"{value:,.{digits}f} ms"


def _wrap(text: str, width: int, indent: str = "", first: str = "") -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first or indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def one_line(p: Plan) -> str:
    shape = f"{p.gpu} {p.quantization} TP{p.tensor_parallel}" + (f"xPP{p.pipeline_parallel}" if p.pipeline_parallel > 1 else "")
    fleet = f"{p.gpus} GPUs"
    if p.instance_type:
        fleet += f" on {p.nodes} x {p.instance_type}"
    else:
        fleet += f" on {p.nodes} node(s)"
    cost = f", ${p.cost_per_hour_usd:,.0f}/h" if p.cost_per_hour_usd is not None else ""
    verdict = "Meets" if p.meets_slo else "MISSES"
    head = f"{p.model} at {p.qps:g} QPS: {p.replicas} x {shape} = {fleet}{cost}; tier {p.tier}."
    slo = (f" {verdict} the SLOs: TTFT p99 {ms(p.ttft_ms_estimate)} of {p.ttft_slo_ms:g} ms, "
           f"TPOT {ms(p.tpot_ms_estimate, 1)} of {p.tpot_slo_ms:g} ms")
    if p.slo_margin_pct:
        slo += f" (sized with a {p.slo_margin_pct:g}% margin, the planner's measured error on vLLM)"
    if p.budget_gpus is not None:
        slo += (f". Within your {p.budget_gpus} GPUs: {'yes' if p.within_budget else 'no'}"
                + (f", they carry about {p.budget_qps:g} QPS" if p.budget_qps is not None else ""))
    return head + slo + "."


def stack_yaml(p: Plan, repo: Optional[str], prompt_tokens: int, output_tokens: int) -> str:
    model: dict = {"id": repo or p.model, "quantization": p.quantization, "tensorParallel": p.tensor_parallel}
    if p.pipeline_parallel > 1:
        model["pipelineParallel"] = p.pipeline_parallel
    model["maxModelLen"] = p.max_model_len
    model["maxNumSeqs"] = p.max_num_seqs
    model["replicas"] = p.replicas
    slo: dict = {"expectedQps": p.qps, "ttftP99Ms": p.ttft_slo_ms, "tpotP99Ms": p.tpot_slo_ms,
                 "meanPromptTokens": prompt_tokens, "meanOutputTokens": output_tokens}
    # A stack's default availability (99.9%) would add spares the plan did not count; an unstated
    # availability is planned as <= 99% (no spares), so the pasted stack says so.
    slo["availability"] = p.availability_pct if p.availability_pct is not None else 99.0
    config = {
        "tierscale:tier": p.tier,
        "tierscale:target": {"kind": TARGET_KIND.get(p.tier, "docker-host")},
        "tierscale:gpu": {"type": p.gpu, "perNode": p.gpus_per_node or 8},
        "tierscale:models": [model],
        "tierscale:slo": {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in slo.items()},
    }
    return yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False, width=78)


def render(p: Plan, repo: Optional[str], prompt_tokens: int, output_tokens: int, width: int = 80) -> str:
    out: list[str] = []
    out += _wrap(one_line(p), width, indent="        ", first="answer: ")
    out.append("")
    figures = [
        ("memory", f"weights {p.weight_bytes / 1e9:,.1f} GB ({p.weight_bytes_per_gpu / 1e9:,.1f} GB per GPU), "
                   f"KV cache {p.kv_cache_bytes_per_replica / 1e9:,.1f} GB per replica = "
                   f"{p.max_concurrent_sequences:,} sequences at {p.max_model_len:,} tokens"),
        ("replica", f"decode batch {p.decode_batch} (maxNumSeqs {p.max_num_seqs}), "
                    f"{p.decode_tokens_per_s_bound:,.0f} output tok/s, {p.prefill_tokens_per_s_bound:,.0f} prompt tok/s, "
                    f"{p.replica_capacity_qps:,.2f} req/s"),
        ("load", f"{p.replicas} replica(s) ({p.spare_replicas} spare) at {min(p.utilization, 9.99):.0%} utilisation"),
        ("cost", (f"${p.cost_per_hour_usd:,.2f}/h, ${p.cost_per_year_usd:,.0f}/year, "
                  f"${p.cost_per_million_output_tokens_usd:,.2f} per 1M output tokens ({p.price_source})")
         if p.cost_per_hour_usd is not None else f"no price known ({p.price_source})"),
        ("tier", p.tier_reason),
    ]
    for label, text in figures:
        out += _wrap(text, width, indent=" " * 10, first=f"{label:<9} ")
    if p.alternatives:
        out.append("")
        out.append(f"alternatives ({p.candidates_evaluated} candidates evaluated):")
        for a in p.alternatives:
            shape = f"{a.gpu} {a.quantization} TP{a.tensor_parallel}" + (f"xPP{a.pipeline_parallel}" if a.pipeline_parallel > 1 else "")
            cost = f"${a.cost_per_hour_usd:,.0f}/h" if a.cost_per_hour_usd is not None else f"{a.gpus} GPUs"
            text = (f"{shape} x {a.replicas} ({a.gpus} GPUs, {cost}), TTFT {ms(a.ttft_ms_estimate)}, "
                    f"TPOT {ms(a.tpot_ms_estimate, 1)}: {a.why_not_chosen}")
            out += _wrap(text, width, indent="    ", first="  - ")
    for label, items in (("warning", p.warnings), ("note", p.notes)):
        for item in items:
            out += _wrap(item, width, indent="    ", first=f"{label}: ")
    out.append("")
    out.append("paste into stacks/Pulumi.<name>.yaml (then set the rest of target for the tier):")
    out += ["  " + line for line in stack_yaml(p, repo, prompt_tokens, output_tokens).rstrip().splitlines()]
    return "\n".join(out) + "\n"
