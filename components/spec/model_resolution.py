"""One model entry -> ResolvedModel: checkpoint facts, what vLLM will load, parallelism, the plan.

Each check appends a Problem naming the key and what is allowed; a model with a problem is not
resolved, and checks that would only repeat its consequence (a reference to its name, the GPU
total) are skipped by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.facts import ModelFacts, gpu_catalog, model_catalog, resolve_model
from components.planner import PlanError, PlanRequest, loading, parallelism, plan, support
from components.spec.errors import Problem
from components.spec.model import ModelSpec, StackSpec
from components.spec.resolved import ResolvedModel
from components.suggestions import suggestion
from components.tiers import TIERS

DEFAULT_MAX_MODEL_LEN = 8192

# What vLLM can produce from a 16-bit checkpoint at load time, and on which GPUs each format
# runs: the one table components/planner/support.py (the planner uses the same).
ONLINE_FROM_16_BIT = support.ONLINE_FROM_16_BIT
SIXTEEN_BIT = support.SIXTEEN_BIT
# Speculative methods that need multi-token-prediction layers in the target checkpoint. At vLLM
# 0.32.0 "mtp" drafts from the target's own checkpoint (vllm/config/speculative.py:1141-1163; the
# per-model *_mtp names are deprecated aliases of it), a checkpoint whose config is not an MTP type
# raises "Unsupported speculative method: 'mtp'" (speculative.py:1360-1391), and
# num_speculative_tokens above the MTP layer count must divide by it (speculative.py:1493-1501).
MTP_METHODS = ("mtp",)


@dataclass(frozen=True)
class ModelIdentity:
    catalog_key: str
    facts: ModelFacts
    hf_repo: str

    @property
    def checkpoint_dtype(self) -> str:
        return self.facts.checkpoint_dtype(self.hf_repo)


def default_name(m: ModelSpec) -> Optional[str]:
    """The model's `name` (set, or derived from the catalog key); None when the id is unknown."""
    if m.name:
        return m.name
    if m.custom is not None:
        return m.id.split("/")[-1].lower().replace(".", "")
    found = resolve_model(m.id)
    return found[0].replace(".", "") if found else None


def identify(m: ModelSpec, where: str, problems: list[Problem]) -> Optional[ModelIdentity]:
    if m.custom is not None:
        repo = m.id if "/" in m.id else (m.custom.hf_repos[0] if m.custom.hf_repos else m.id)
        return ModelIdentity(m.id.split("/")[-1].lower(), m.custom, repo)
    found = resolve_model(m.id)
    if found is None:
        known = list(model_catalog())
        known_repos = [r for f in model_catalog().values() for r in f.hf_repos]
        problems.append(Problem(
            f"{where}.id",
            f"{m.id!r} is not in the model catalog{suggestion(m.id, known + known_repos)}; "
            f"use one of: {', '.join(known)}, or describe the model under {where}.custom",
        ))
        return None
    key, facts = found
    repo = next((r for r in facts.hf_repos if r.lower() == m.id.lower()), facts.hf_repos[0])
    return ModelIdentity(key, facts, repo)


def loaded_quantization(m: ModelSpec, ident: ModelIdentity, spec: StackSpec, where: str,
                        problems: list[Problem]) -> Optional[str]:
    """The weight format vLLM will hold in memory, or None (problem recorded)."""
    checkpoint = ident.checkpoint_dtype
    wanted = m.quantization or checkpoint
    if support.can_load(checkpoint, wanted):
        found = support.problem([checkpoint], wanted, gpu_catalog().get(spec.gpu.type), spec.gpu.type)
        if found:
            problems.append(Problem(f"{where}.quantization", found))
            return None
        return wanted
    others = ident.facts.repos_with_dtype(wanted)
    if checkpoint in SIXTEEN_BIT:
        instead = f"use a checkpoint published in {wanted}: id: {others[0]}" if others else \
            f"no catalog checkpoint of {ident.catalog_key} is published in {wanted}"
        problems.append(Problem(
            f"{where}.quantization",
            f"{wanted!r} needs a checkpoint quantized to {wanted}, but {ident.hf_repo} holds {checkpoint} weights "
            f"and vLLM only converts 16-bit weights to {', '.join(ONLINE_FROM_16_BIT)} at load time; {instead}, "
            f"or set quantization to one of: {', '.join(ONLINE_FROM_16_BIT)}",
        ))
        return None
    sixteen = [r for r in ident.facts.hf_repos if ident.facts.checkpoint_dtype(r) in SIXTEEN_BIT]
    alternative = f", or id: {sixteen[0]} for {wanted}" if sixteen and wanted in ONLINE_FROM_16_BIT else ""
    problems.append(Problem(
        f"{where}.quantization",
        f"{ident.hf_repo} is a {checkpoint} checkpoint; vLLM loads it as {checkpoint} (a different quantization "
        f"fails at load): set quantization: {checkpoint} or leave it out{alternative}",
    ))
    return None


def max_model_len(m: ModelSpec, ident: ModelIdentity, spec: StackSpec, where: str, problems: list[Problem]) -> Optional[int]:
    context = ident.facts.checkpoint_context(ident.hf_repo)
    traffic = spec.slo.mean_prompt_tokens + spec.slo.mean_output_tokens
    if m.max_model_len is None:
        value = min(context, max(DEFAULT_MAX_MODEL_LEN, traffic))
    else:
        value = m.max_model_len
    if value > context:
        problems.append(Problem(f"{where}.maxModelLen", f"{value} exceeds {ident.hf_repo}'s context of {context} tokens "
                                "(vLLM refuses a longer max_model_len)"))
        return None
    if value < traffic:
        key = f"{where}.maxModelLen" if m.max_model_len is not None else "slo.meanPromptTokens"
        problems.append(Problem(key, f"maxModelLen {value} is below slo.meanPromptTokens + slo.meanOutputTokens = "
                                f"{traffic}: the typical request would be refused; raise maxModelLen to >= {traffic}"
                                + (f" (the model's context is {context})" if m.max_model_len is not None else "")))
        return None
    return value


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_parallelism(m: ModelSpec, where: str, facts: ModelFacts, spec: StackSpec, total_gpus: int,
                      problems: list[Problem]) -> bool:
    ok = True
    per_node = spec.gpu.per_node
    tp = m.tensor_parallel
    if tp is not None:
        if not _is_power_of_two(tp) or per_node % tp:
            problems.append(Problem(f"{where}.tensorParallel", f"{tp} is not a power of two dividing {per_node} GPUs per node"))
            ok = False
        elif tp not in parallelism.valid_tensor_parallel_sizes(facts, per_node):
            problems.append(Problem(
                f"{where}.tensorParallel",
                f"{tp} does not divide the model's {facts.attention_heads} attention heads / {facts.kv_heads} KV heads; "
                f"allowed: {', '.join(map(str, parallelism.valid_tensor_parallel_sizes(facts, per_node)))}",
            ))
            ok = False
    pp = m.pipeline_parallel
    if pp is not None:
        if pp > facts.layers:
            problems.append(Problem(f"{where}.pipelineParallel", f"{pp} exceeds the model's {facts.layers} layers"))
            ok = False
        if m.tensor_parallel is None and pp > 1:
            problems.append(Problem(f"{where}.pipelineParallel", "set tensorParallel too: pipeline stages are sized in "
                                    "whole tensor-parallel groups"))
            ok = False
    if ok and (tp or 1) * (pp or 1) > total_gpus:
        advice = ("one replica needs more GPUs than this host has: the medium tier (a LeaderWorkerSet across "
                  "nodes) or baremetal (leader and worker units on several hosts) can run it"
                  if TIERS[spec.tier].one_host else "add GPU nodes")
        problems.append(Problem(
            f"{where}.pipelineParallel" if pp else f"{where}.tensorParallel",
            f"tensorParallel x pipelineParallel = {(tp or 1) * (pp or 1)} exceeds the {total_gpus} GPUs available; "
            + advice,
        ))
        ok = False
    return ok


def check_speculative(m: ModelSpec, facts: ModelFacts, where: str, problems: list[Problem]) -> bool:
    sd = m.speculative_decoding
    if sd is None:
        return True
    if sd.method in ("eagle", "eagle3", "draft_model") and not sd.draft_model:
        problems.append(Problem(f"{where}.speculativeDecoding.draftModel", f"required for method {sd.method!r}"))
        return False
    if sd.method in MTP_METHODS:
        if facts.mtp_layers == 0:
            problems.append(Problem(f"{where}.speculativeDecoding.method",
                                    f"{sd.method!r} needs multi-token-prediction layers in the checkpoint and this "
                                    "model has none (vLLM raises 'Unsupported speculative method'); use ngram, or "
                                    "eagle/eagle3/draft_model with draftModel"))
            return False
        if sd.draft_model:
            problems.append(Problem(f"{where}.speculativeDecoding.draftModel",
                                    "mtp uses the model's own MTP layers; remove draftModel"))
            return False
        if sd.num_speculative_tokens > facts.mtp_layers and sd.num_speculative_tokens % facts.mtp_layers:
            problems.append(Problem(f"{where}.speculativeDecoding.numSpeculativeTokens",
                                    f"must be a multiple of the model's {facts.mtp_layers} MTP layer(s)"))
            return False
    if sd.method == "ngram" and sd.draft_model:
        problems.append(Problem(f"{where}.speculativeDecoding.draftModel", "ngram needs no draft model; remove it"))
        return False
    return True


def resolve_entry(i: int, m: ModelSpec, spec: StackSpec, total_gpus: int, problems: list[Problem]) -> Optional[ResolvedModel]:
    where = f"models[{i}]"
    ident = identify(m, where, problems)
    if ident is None:
        return None
    derived: dict[str, object] = {}
    before = len(problems)
    quantization = loaded_quantization(m, ident, spec, where, problems)
    if m.quantization is None and quantization is not None:
        derived["quantization"] = quantization
    max_len = max_model_len(m, ident, spec, where, problems)
    if m.max_model_len is None and max_len is not None:
        derived["maxModelLen"] = max_len
    check_parallelism(m, where, ident.facts, spec, total_gpus, problems)
    check_speculative(m, ident.facts, where, problems)
    scaling = m.autoscaling
    if scaling is not None:
        if not TIERS[spec.tier].autoscales:
            which = " and ".join(t.name for t in TIERS.values() if t.autoscales)
            problems.append(Problem(f"{where}.autoscaling", f"only the {which} tier autoscales; remove it or set {where}.replicas"))
        else:
            if scaling.min_replicas > scaling.max_replicas:
                problems.append(Problem(f"{where}.autoscaling.minReplicas", f"{scaling.min_replicas} exceeds maxReplicas {scaling.max_replicas}"))
            if scaling.fallback_replicas is not None and scaling.fallback_replicas > scaling.max_replicas:
                problems.append(Problem(f"{where}.autoscaling.fallbackReplicas",
                                        f"{scaling.fallback_replicas} exceeds maxReplicas {scaling.max_replicas}"))
            if m.replicas is not None and not scaling.min_replicas <= m.replicas <= scaling.max_replicas:
                problems.append(Problem(f"{where}.replicas", f"{m.replicas} is outside autoscaling bounds [{scaling.min_replicas}, {scaling.max_replicas}]"))
    if len(problems) > before:
        return None

    request = PlanRequest(
        model_key=ident.catalog_key, model=ident.facts, gpu_key=spec.gpu.type, quantization=quantization,
        max_model_len=max_len, qps=spec.slo.expected_qps if m.expected_qps is None else m.expected_qps,
        prompt_tokens=spec.slo.mean_prompt_tokens,
        output_tokens=spec.slo.mean_output_tokens, ttft_slo_ms=spec.slo.ttft_p99_ms,
        tpot_slo_ms=spec.slo.tpot_p99_ms, availability_pct=spec.slo.availability,
        gpu_memory_utilization=m.gpu_memory_utilization, gpus_per_node=spec.gpu.per_node,
        max_num_seqs=m.max_num_seqs, kv_cache_dtype=m.kv_cache_dtype,
        tensor_parallel=m.tensor_parallel,
        pipeline_parallel=m.pipeline_parallel if m.tensor_parallel else None,
    )
    try:
        p = plan(request)
    except PlanError as exc:
        problems.append(Problem(where, str(exc)))
        return None
    if not p.fits:
        set_keys = [k for k, v in (("tensorParallel", m.tensor_parallel), ("pipelineParallel", m.pipeline_parallel)) if v]
        problems.append(Problem(
            f"{where}.{set_keys[0]}" if set_keys else where,
            f"{ident.catalog_key} {quantization} at maxModelLen {max_len} does not fit tensorParallel {p.tensor_parallel} x "
            f"pipelineParallel {p.pipeline_parallel} on {spec.gpu.type}: {p.fit_advice}",
        ))
        return None
    if m.tensor_parallel is None:
        derived["tensorParallel"] = p.tensor_parallel
    if m.pipeline_parallel is None:
        derived["pipelineParallel"] = p.pipeline_parallel
    replicas = m.replicas
    if replicas is None:
        replicas = p.replicas
        if scaling is not None:
            replicas = min(max(replicas, scaling.min_replicas), scaling.max_replicas)
        derived["replicas"] = replicas
    budget = loading.startup_budget_s(p.weight_bytes_per_gpu)
    derived["startupBudgetSeconds"] = budget
    return ResolvedModel(
        spec=m, catalog_key=ident.catalog_key, facts=ident.facts, name=default_name(m), hf_repo=ident.hf_repo,
        served_model_name=m.served_model_name or ident.hf_repo, quantization=quantization,
        checkpoint_dtype=ident.checkpoint_dtype, checkpoint_quant_method=ident.facts.checkpoint_quant_method(ident.hf_repo),
        tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel,
        max_model_len=max_len, replicas=replicas,
        min_replicas=scaling.min_replicas if scaling else replicas,
        max_replicas=scaling.max_replicas if scaling else replicas,
        plan=p, startup_budget_s=budget, derived=derived,
    )
