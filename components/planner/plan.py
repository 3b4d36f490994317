"""`plan()`: size a deployment from model facts, GPU facts, load and SLOs.

The result's JSON form (`Plan.to_json()`) is a stable interface: keys are only ever added.
Every figure has its unit in `units`.

With `tensor_parallel` unset, `plan()` searches (components/planner/search.py): every TP/PP
(and, when unset, GPU type with `gpu_key="any"`, quantization and max_num_seqs) is evaluated with
the calibrated performance model (perf.py) and the cheapest configuration meeting TTFT and
TPOT wins; `alternatives` lists the next best with why each lost. With `tensor_parallel` set,
that one configuration is evaluated.
"""

from __future__ import annotations

import math
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from components.facts import gpu_catalog
from components.facts import ModelFacts
from components.planner import calibration, memory, parallelism, search, support, tiering

# Headroom: replicas are planned so the load uses at most this share of their capacity (less
# when the TTFT SLO needs shorter queues).
DEFAULT_TARGET_UTILIZATION = 0.8
DEFAULT_TOP = 5


def replicas_for_availability(availability_pct: Optional[float]) -> int:
    """Minimum replicas for an availability target: 1 plus the spares it needs."""
    return 1 + search.availability_spares(availability_pct)


UNITS = {
    "weight_bytes": "bytes",
    "weight_bytes_per_gpu": "bytes",
    "kv_bytes_per_token": "bytes/token",
    "kv_bytes_per_token_per_replica": "bytes/token",
    "kv_cache_bytes_per_replica": "bytes",
    "tensor_parallel": "GPUs",
    "pipeline_parallel": "stages",
    "gpus_per_replica": "GPUs",
    "max_concurrent_sequences": "sequences at max_model_len",
    "max_num_seqs": "sequences",
    "decode_batch": "sequences",
    "decode_tokens_per_s_bound": "output tokens/s per replica",
    "prefill_tokens_per_s_bound": "prompt tokens/s per replica",
    "tpot_ms_estimate": "ms/token",
    "ttft_ms_estimate": "ms",
    "tpot_margin_pct": "% of the TPOT SLO left",
    "ttft_margin_pct": "% of the TTFT SLO left",
    "utilization": "share of replica capacity at the planned QPS",
    "replica_capacity_qps": "requests/s per replica",
    "replicas": "replicas",
    "spare_replicas": "replicas",
    "gpus": "GPUs",
    "nodes": "nodes",
    "rule_of_thumb_gpus": "GPUs",
    "cost_per_hour_usd": "USD/hour",
    "cost_per_year_usd": "USD/year",
    "cost_per_million_output_tokens_usd": "USD per 1M output tokens",
}


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_key: str
    model: ModelFacts
    gpu_key: str = Field(description='A gpus.yaml key, or "any" to search every GPU type.')
    quantization: Optional[str] = Field(default=None, description="None: search every servable quantization.")
    max_model_len: int = Field(gt=0)
    qps: float = Field(ge=0)
    prompt_tokens: int = Field(default=512, gt=0)
    output_tokens: int = Field(default=256, gt=0)
    ttft_slo_ms: float = Field(default=500, gt=0)
    tpot_slo_ms: float = Field(default=100, gt=0)
    availability_pct: Optional[float] = Field(default=None, gt=0, le=100,
                                              description="Only when stated (CLI --availability, stack slo.availability).")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    gpus_per_node: Optional[int] = None
    max_num_seqs: Optional[int] = Field(default=None, gt=0, description="None: searched (16 ... 1024).")
    kv_cache_dtype: str = "auto"
    min_sequences: int = Field(default=1, ge=1)
    tensor_parallel: Optional[int] = None
    pipeline_parallel: Optional[int] = None
    replicas: Optional[int] = Field(default=None, gt=0, description="Evaluate this many replicas instead of sizing them.")
    target_utilization: float = Field(default=DEFAULT_TARGET_UTILIZATION, gt=0, lt=1)
    price_per_instance_hour: Optional[float] = Field(default=None, gt=0)
    top: int = Field(default=DEFAULT_TOP, ge=0)
    max_gpus: Optional[int] = Field(default=None, gt=0, description="Budget: at most this many GPUs in all.")
    max_nodes: Optional[int] = Field(default=None, gt=0, description="Budget: at most this many nodes (instances).")
    slo_margin: Optional[float] = Field(
        default=None, ge=0, le=1,
        description="Size for SLO / (1 + margin). None: the planner's measured error on vLLM "
        "(calibration.slo_margin) when sizing, 0 when evaluating given replicas.")


class Alternative(BaseModel):
    gpu: str
    quantization: str
    tensor_parallel: int
    pipeline_parallel: int
    max_num_seqs: int
    replicas: int
    gpus: int
    nodes: int
    cost_per_hour_usd: Optional[float]
    ttft_ms_estimate: float
    tpot_ms_estimate: float
    meets_slo: bool
    why_not_chosen: str


class Plan(BaseModel):
    model: str
    gpu: str
    quantization: str
    max_model_len: int
    weight_bytes: int
    weight_bytes_per_gpu: int
    kv_bytes_per_token: int
    kv_bytes_per_token_per_replica: int
    fits: bool
    fit_advice: Optional[str]
    tensor_parallel: int
    pipeline_parallel: int
    gpus_per_replica: int
    kv_cache_bytes_per_replica: int
    max_concurrent_sequences: int
    decode_batch: int
    decode_tokens_per_s_bound: float
    prefill_tokens_per_s_bound: float
    tpot_ms_estimate: float
    ttft_ms_estimate: float
    replica_capacity_qps: float
    replicas: int
    gpus: int
    nodes: int
    instance_type: Optional[str]
    tier: str
    tier_reason: str
    rule_of_thumb_gpus: float
    cost_per_hour_usd: Optional[float]
    cost_per_year_usd: Optional[float]
    cost_per_million_output_tokens_usd: Optional[float]
    warnings: list[str]
    # Added by planner v2 (search and calibrated model).
    max_num_seqs: int = 0
    utilization: float = 0.0
    spare_replicas: int = 0
    qps: float = 0.0
    availability_pct: Optional[float] = None
    ttft_slo_ms: float = 0.0
    tpot_slo_ms: float = 0.0
    ttft_margin_pct: float = 0.0
    tpot_margin_pct: float = 0.0
    meets_slo: bool = True
    slo_misses: list[str] = Field(default_factory=list)
    price_as_of: Optional[str] = None
    price_source: str = ""
    candidates_evaluated: int = 0
    alternatives: list[Alternative] = Field(default_factory=list)
    units: dict[str, str] = Field(default_factory=lambda: dict(UNITS))
    # Added by issue #21 (vLLM calibration, one verdict, answers you can paste).
    engine: str = "vllm"
    slo_margin_pct: float = 0.0
    notes: list[str] = Field(default_factory=list)
    gpus_per_node: int = 0
    budget_gpus: Optional[int] = None
    within_budget: Optional[bool] = None
    budget_qps: Optional[float] = None

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def describe(self) -> str:
        pp = f"xPP{self.pipeline_parallel}" if self.pipeline_parallel > 1 else ""
        return f"{self.gpu} {self.quantization} TP{self.tensor_parallel}{pp} x {self.replicas} replicas ({self.gpus} GPUs)"


class PlanError(ValueError):
    """The model cannot be placed on this GPU type at all."""


def margin_for(req: PlanRequest) -> float:
    if req.slo_margin is not None:
        return req.slo_margin
    return 0.0 if req.replicas is not None else calibration.slo_margin()


def _load(req: PlanRequest) -> search.Load:
    return search.Load(
        model=req.model, max_model_len=req.max_model_len, qps=req.qps, prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens, ttft_slo_s=req.ttft_slo_ms / 1000, tpot_slo_s=req.tpot_slo_ms / 1000,
        availability_pct=req.availability_pct, gpu_memory_utilization=req.gpu_memory_utilization,
        gpus_per_node=req.gpus_per_node, kv_cache_dtype=req.kv_cache_dtype, min_sequences=req.min_sequences,
        target_utilization=req.target_utilization, price_per_instance_hour=req.price_per_instance_hour,
        replicas=req.replicas, slo_margin=margin_for(req),
    )


def plan(req: PlanRequest) -> Plan:
    gpu_keys = list(gpu_catalog()) if req.gpu_key == "any" else [req.gpu_key]
    quantizations = None if req.quantization is None else [req.quantization]
    load = _load(req)
    parallel = None
    if req.tensor_parallel is not None:
        parallel = (req.tensor_parallel, req.pipeline_parallel or 1)
    ranked = search.candidates(load, gpu_keys, quantizations, req.max_num_seqs, parallel)
    if not ranked:
        raise PlanError(f"{req.model_key}: no servable quantization on {req.gpu_key}")
    budget = None
    if req.max_gpus is not None or req.max_nodes is not None:
        ranked, budget = _within_budget(req, load, ranked)
    best = ranked[0]
    warnings: list[str] = []
    advice = None
    if budget is not None and budget[1] is not None:
        best = budget[1]
    if not best.fits:
        gpu = best.gpu
        per_node = req.gpus_per_node or gpu.max_gpus_per_node
        tp = req.tensor_parallel or (parallelism.valid_tensor_parallel_sizes(req.model, per_node) or [1])[-1]
        pp = req.pipeline_parallel or 1
        advice = parallelism.fit_advice(req.model, best.gpu_key, gpu, best.quantization, tp, pp, per_node,
                                        req.max_model_len, req.gpu_memory_utilization, req.kv_cache_dtype)
        if best.placement.max_concurrent_sequences < 1 and parallel is None:
            raise PlanError(f"{req.model_key} with {best.quantization} at maxModelLen {req.max_model_len} on {best.gpu_key}: {advice}")
        if best.placement.kv_budget_bytes <= 0 and parallel is not None:
            # Nothing to size: report the placement as not fitting (the spec turns this into an error).
            return _to_plan(req, best, ranked, [f"does not fit as configured: {advice}"], advice)
        warnings.append(f"does not fit as configured: {advice}")
        best = _sized_anyway(load, best)
    for miss in best.misses:
        if miss != "does not fit":
            warnings.append(f"misses SLO: {miss}")
    result = _to_plan(req, best, ranked, warnings, advice)
    if budget is not None:
        thin = budget[1] is not None and getattr(budget[1], "thin_margin", False)
        result.budget_gpus, result.within_budget, result.budget_qps = budget[0], budget[1] is None or thin, budget[2]
        if thin:
            result.notes.append(f"fits the budget only without the {result.slo_margin_pct:g}% safety margin "
                                "(the planner's measured error): estimates are within the SLOs, not below SLO / (1 + margin)")
    return result


def _one_host_fleet(req: PlanRequest, c: search.Candidate):
    """The cheapest single instance (or self-hosted node) holding every replica, if one can."""
    from components.planner import cost

    if c.pipeline_parallel > 1 or c.replicas < 1:
        return None
    per_node = req.gpus_per_node or c.gpu.max_gpus_per_node
    if c.gpus > per_node:
        return None
    options = [i for i in c.gpu.aws_instances if i.gpus >= c.gpus]
    if options:
        inst = min(options, key=lambda i: i.usd_per_hour)
        price = req.price_per_instance_hour if req.price_per_instance_hour is not None else inst.usd_per_hour
        return cost.Fleet(inst.type, 1, price)
    if c.gpu.aws_instances:
        return None
    return cost.Fleet(None, 1, req.price_per_instance_hour)


def _budget_gpus(req: PlanRequest, c: search.Candidate) -> int:
    per_node = req.gpus_per_node or c.gpu.max_gpus_per_node
    limits = [req.max_gpus] if req.max_gpus is not None else []
    if req.max_nodes is not None:
        limits.append(req.max_nodes * per_node)
    return min(limits)


def _within_budget(req: PlanRequest, load: search.Load, ranked: list[search.Candidate]):
    """Candidates within --max-gpus / --nodes first. When none carries the load, the shape that
    carries the most within the budget, evaluated at the replicas that fit, with a miss saying so.
    Returns (ranked, (budget GPUs, over-budget candidate or None, QPS the budget carries))."""
    def nodes(c: search.Candidate) -> int:
        return c.fleet.instances if c.fleet else math.ceil(c.gpus / (req.gpus_per_node or c.gpu.max_gpus_per_node))

    def inside(c: search.Candidate) -> bool:
        return (c.fits and c.gpus <= _budget_gpus(req, c)
                and (req.max_nodes is None or nodes(c) <= req.max_nodes))

    ok = [c for c in ranked if inside(c)]
    if ok:
        best = ok[0]
        per = req.qps / max(1, best.replicas - best.spares) if req.qps > 0 else best.capacity_qps
        carried = per * max(0, _budget_gpus(req, best) // best.gpus_per_replica - best.spares)
        return ok + [c for c in ranked if not inside(c)], (_budget_gpus(req, best), None, round(carried, 2))
    options = []
    for c in search.distinct_configs(ranked):
        limit = _budget_gpus(req, c)
        if not c.fits or c.gpus_per_replica > limit or c.replicas < 1:
            continue
        n = limit // c.gpus_per_replica
        if req.max_nodes is not None and c.pipeline_parallel > 1:
            n = min(n, req.max_nodes // c.pipeline_parallel)
        if n < 1:
            continue
        per = req.qps / max(1, c.replicas - c.spares) if req.qps > 0 else c.capacity_qps
        options.append((per * max(0, n - c.spares), -(c.cost_per_hour or 0), c, n, limit))
    if not options:
        smallest = min((c.gpus_per_replica for c in ranked if c.fits), default=None)
        need = f"one replica needs {smallest} GPUs" if smallest else "it fits no GPU type searched"
        raise PlanError(f"{req.model_key} does not fit the budget (--max-gpus / --nodes): {need}")
    carried, _, c, n, limit = max(options, key=lambda o: (o[0], o[1]))
    fixed = search.Load(**{**load.__dict__, "replicas": n, "slo_margin": 0.0})
    shaped = search.evaluate(fixed, c.gpu_key, c.quantization, c.tensor_parallel, c.pipeline_parallel, c.max_num_seqs)
    cheapest = next((x for x in ranked if x.meets_slo), ranked[0])
    if not shaped.misses:  # meets the SLOs, only without the safety margin
        shaped.thin_margin = True
        return [shaped] + ranked, (limit, shaped, round(carried, 2))
    shaped.misses.append(f"over budget: {req.qps:g} QPS needs {cheapest.gpus} GPUs ({cheapest.label()}); "
                         f"{limit} GPUs carry about {carried:.1f} QPS")
    return [shaped] + ranked, (limit, shaped, round(carried, 2))


def _sized_anyway(load: search.Load, c: search.Candidate) -> search.Candidate:
    """Figures for a placement short of min_sequences (it still holds some sequences)."""
    relaxed = search.Load(**{**load.__dict__, "min_sequences": 1})
    sized = search.evaluate(relaxed, c.gpu_key, c.quantization, c.tensor_parallel, c.pipeline_parallel, c.max_num_seqs)
    sized.fits = False
    sized.misses.insert(0, "does not fit")
    return sized


def _to_plan(req: PlanRequest, best: search.Candidate, ranked: list[search.Candidate], warnings: list[str],
             advice: Optional[str]) -> Plan:
    model, tp, pp = req.model, best.tensor_parallel, best.pipeline_parallel
    gpus_per_replica = tp * pp
    fleet = best.fleet
    nodes = fleet.instances if fleet else max(1, math.ceil(best.replicas * gpus_per_replica / best.gpu.max_gpus_per_node))
    tiers = tiering.recommend_tier(req.qps, nodes, req.availability_pct)
    one_host = _one_host_fleet(req, best)
    if nodes > 1 and one_host is not None and tiering.recommend_tier(req.qps, 1, req.availability_pct).tier == "small":
        # Everything fits one host: the small tier on that host, not a fleet of single-GPU nodes.
        if best.fleet is not None and best.fleet.usd_per_hour is not None and one_host.usd_per_hour is not None \
                and best.fleet.usd_per_hour < one_host.usd_per_hour:
            warnings.append(f"one host ({one_host.instance_type}, ${one_host.usd_per_hour:,.2f}/h) keeps this on the "
                            f"small tier; {best.fleet.instances} x {best.fleet.instance_type} would cost "
                            f"${best.fleet.usd_per_hour:,.2f}/h on the medium tier")
        fleet, nodes = one_host, 1
        tiers = tiering.recommend_tier(req.qps, nodes, req.availability_pct)
    usd_hour = fleet.usd_per_hour if fleet else None
    tokens_per_hour = best.replicas * best.decode_tokens_per_s * 3600
    per_million = usd_hour / tokens_per_hour * 1e6 if usd_hour is not None and tokens_per_hour > 0 else None
    weights = memory.weight_bytes(model, best.quantization)
    finite = lambda x: round(x, 2) if math.isfinite(x) else 1e9  # noqa: E731 - JSON has no infinity
    ttft_ms, tpot_ms = finite(best.ttft_s * 1000), finite(best.step_s * 1000)
    if best.replicas > 0 and req.qps > 0 and best.utilization > 0 and math.isfinite(best.utilization):
        load_note = f"{best.utilization:.0%} utilisation"
    else:
        load_note = "idle"
    alternatives = []
    shown = [c for c in search.distinct_configs(ranked)[1:] if c.fits]
    for alt in shown[:req.top]:
        alt_nodes = alt.fleet.instances if alt.fleet else 0
        alternatives.append(Alternative(
            gpu=alt.gpu_key, quantization=alt.quantization, tensor_parallel=alt.tensor_parallel,
            pipeline_parallel=alt.pipeline_parallel, max_num_seqs=alt.max_num_seqs, replicas=alt.replicas,
            gpus=alt.gpus, nodes=alt_nodes,
            cost_per_hour_usd=None if alt.cost_per_hour is None else round(alt.cost_per_hour, 2),
            ttft_ms_estimate=finite(alt.ttft_s * 1000), tpot_ms_estimate=finite(alt.step_s * 1000),
            meets_slo=alt.meets_slo, why_not_chosen=search.why_lost(alt, best),
        ))
    price_source = ("--price-per-hour override" if req.price_per_instance_hour is not None
                    else (f"AWS on-demand us-east-1, {best.gpu.price_as_of}" if fleet and fleet.instance_type else "no price known"))
    return Plan(
        model=req.model_key,
        gpu=best.gpu_key,
        quantization=best.quantization,
        max_model_len=req.max_model_len,
        weight_bytes=round(weights),
        weight_bytes_per_gpu=round(weights / gpus_per_replica),
        kv_bytes_per_token=memory.kv_bytes_per_token(model, req.kv_cache_dtype),
        kv_bytes_per_token_per_replica=memory.kv_bytes_per_token_per_replica(model, tp, req.kv_cache_dtype),
        fits=best.fits,
        fit_advice=advice,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        gpus_per_replica=gpus_per_replica,
        kv_cache_bytes_per_replica=max(0, round(best.placement.kv_budget_bytes)),
        max_concurrent_sequences=best.placement.max_concurrent_sequences,
        decode_batch=best.batch,
        decode_tokens_per_s_bound=round(best.decode_tokens_per_s, 1),
        prefill_tokens_per_s_bound=round(best.prefill_tokens_per_s, 1),
        tpot_ms_estimate=tpot_ms,
        ttft_ms_estimate=ttft_ms,
        replica_capacity_qps=round(best.capacity_qps, 3),
        replicas=best.replicas,
        gpus=best.gpus,
        nodes=nodes,
        instance_type=fleet.instance_type if fleet else None,
        tier=tiers.tier,
        tier_reason=tiers.reason,
        rule_of_thumb_gpus=round(tiering.rule_of_thumb_gpus(req.qps), 1),
        cost_per_hour_usd=None if usd_hour is None else round(usd_hour, 2),
        cost_per_year_usd=None if usd_hour is None else round(fleet.usd_per_year, 2),
        cost_per_million_output_tokens_usd=None if per_million is None else round(per_million, 4),
        warnings=warnings,
        max_num_seqs=best.max_num_seqs,
        utilization=round(best.utilization, 3) if math.isfinite(best.utilization) else 1e9,
        spare_replicas=best.spares,
        qps=req.qps,
        availability_pct=req.availability_pct,
        ttft_slo_ms=req.ttft_slo_ms,
        tpot_slo_ms=req.tpot_slo_ms,
        ttft_margin_pct=round(max(-1e6, (1 - ttft_ms / req.ttft_slo_ms) * 100), 1),
        tpot_margin_pct=round(max(-1e6, (1 - tpot_ms / req.tpot_slo_ms) * 100), 1),
        meets_slo=best.meets_slo,
        slo_misses=list(best.misses),
        price_as_of=best.gpu.price_as_of,
        price_source=price_source,
        candidates_evaluated=len(ranked),
        alternatives=alternatives,
        slo_margin_pct=round(margin_for(req) * 100, 1),
        notes=[n for n in (support.note(best.quantization, best.gpu),) if n],
        gpus_per_node=req.gpus_per_node or best.gpu.max_gpus_per_node,
    )


def compare_to_optimum(configured: Plan, optimum: Plan, cost_factor: float = 1.5, slo_misses: bool = True) -> list[str]:
    """Warnings for a configured plan against the planner's optimum for the same model and load.

    Warns when the configured choice misses an SLO or costs more than `cost_factor` x the
    optimum (on the same GPU type: GPUs, since instance packing is not the choice being judged;
    across GPU types or without a price: dollars, else GPUs) and more than one replica beyond it (one spare
    replica is redundancy, not waste). Pure: the spec validator prints the same lines
    (it reports SLO misses itself, with their keys, so it passes slo_misses=False)."""
    warnings = []
    name = configured.model
    if not configured.fits:
        warnings.append(f"{name}: configured {configured.describe()} does not fit: {configured.fit_advice}")
    for miss in configured.slo_misses if slo_misses else ():
        if miss != "does not fit":
            warnings.append(f"{name}: configured {configured.describe()} misses an SLO: {miss}")
    a, b = configured.cost_per_hour_usd, optimum.cost_per_hour_usd
    # The optimum plus one spare replica is the allowance: one replica more is redundancy.
    spare = (optimum.replicas + 1) / optimum.replicas if optimum.replicas > 0 else 1.0
    if a is not None and b is not None and b > 0 and configured.gpu != optimum.gpu:
        if a > cost_factor * b * spare:
            warnings.append(f"{name}: configured {configured.describe()} costs ${a:,.2f}/h, {a / b:.1f}x the optimum "
                            f"{optimum.describe()} at ${b:,.2f}/h")
    elif optimum.gpus > 0 and configured.gpus > cost_factor * optimum.gpus * spare:
        warnings.append(f"{name}: configured {configured.describe()} uses {configured.gpus / optimum.gpus:.1f}x the optimum's "
                        f"GPUs ({optimum.describe()}; one spare replica allowed)")
    return warnings  # at most one replica more than the optimum: a spare, not waste
    if a is not None and b is not None and b > 0:
        if a > cost_factor * b:
            warnings.append(f"{name}: configured {configured.describe()} costs ${a:,.2f}/h, {a / b:.1f}x the optimum "
                            f"{optimum.describe()} at ${b:,.2f}/h")
    elif optimum.gpus > 0 and configured.gpus > cost_factor * optimum.gpus:
        warnings.append(f"{name}: configured {configured.describe()} uses {configured.gpus / optimum.gpus:.1f}x the optimum's "
                        f"GPUs ({optimum.describe()}; one spare replica allowed)")
    return warnings
