"""Cross-field rules and planner-derived defaults, applied after the field-level checks.

Every rule appends Problems instead of raising, so one run reports everything that is wrong.
"""

from __future__ import annotations

from typing import Optional

from components.facts import ModelFacts, gpu_catalog, model_catalog, resolve_model
from components.planner import PlanError, PlanRequest, loading, parallelism, plan
from components.spec.errors import Problem
from components.suggestions import suggestion
from components.spec.model import (
    TIER_TARGETS,
    PlatformSpec,
    BaremetalTarget,
    DockerHostTarget,
    EksTarget,
    KubernetesTarget,
    ModelSpec,
    StackSpec,
)
from components.spec.resolved import ResolvedModel, ResolvedStack

DEFAULT_MAX_MODEL_LEN = 8192


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def available_gpus(spec: StackSpec) -> int:
    """GPUs the stack may place replicas on."""
    target = spec.target
    if isinstance(target, DockerHostTarget):
        return len(target.gpu_device_ids) if target.gpu_device_ids else spec.gpu.per_node
    if isinstance(target, KubernetesTarget):
        return target.gpu_nodes * spec.gpu.per_node
    if isinstance(target, EksTarget):
        return target.gpu_node_group.max_size * spec.gpu.per_node
    if isinstance(target, BaremetalTarget):
        return sum(h.gpus for h in target.hosts)
    raise AssertionError(target)


def _facts_for(m: ModelSpec, where: str, problems: list[Problem]) -> Optional[tuple[str, ModelFacts, str]]:
    """(catalog key, facts, HF repo) for a model entry."""
    if m.custom is not None:
        repo = m.id if "/" in m.id else (m.custom.hf_repos[0] if m.custom.hf_repos else m.id)
        return m.id.split("/")[-1].lower(), m.custom, repo
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
    repo = m.id if "/" in m.id else facts.hf_repos[0]
    return key, facts, repo


def _check_parallelism(m: ModelSpec, where: str, facts: ModelFacts, spec: StackSpec, problems: list[Problem]) -> bool:
    ok = True
    per_node = spec.gpu.per_node
    tp = m.tensor_parallel
    if tp is not None:
        if not _is_power_of_two(tp) or per_node % tp:
            problems.append(Problem(f"{where}.tensorParallel", f"{tp} is not a power of two dividing {per_node} GPUs per node"))
            ok = False
        elif facts.attention_heads % tp:
            problems.append(Problem(
                f"{where}.tensorParallel",
                f"{tp} does not divide the model's {facts.attention_heads} attention heads; "
                f"allowed: {', '.join(map(str, parallelism.valid_tensor_parallel_sizes(facts, per_node)))}",
            ))
            ok = False
    pp = m.pipeline_parallel
    if pp is not None:
        if pp > facts.layers:
            problems.append(Problem(f"{where}.pipelineParallel", f"{pp} exceeds the model's {facts.layers} layers"))
            ok = False
        if spec.tier == "small" and pp > 1 and (tp or 1) * pp > per_node:
            problems.append(Problem(
                f"{where}.pipelineParallel",
                f"tensorParallel x pipelineParallel = {(tp or 1) * pp} exceeds the host's {per_node} GPUs (gpu.perNode)",
            ))
            ok = False
    total = available_gpus(spec)
    if ok and (tp or 1) * (pp or 1) > total:
        problems.append(Problem(
            f"{where}.pipelineParallel" if pp else f"{where}.tensorParallel",
            f"tensorParallel x pipelineParallel = {(tp or 1) * (pp or 1)} exceeds the {total} GPUs available",
        ))
        ok = False
    return ok


def _resolve_model(i: int, m: ModelSpec, spec: StackSpec, problems: list[Problem]) -> Optional[ResolvedModel]:
    where = f"models[{i}]"
    found = _facts_for(m, where, problems)
    if found is None:
        return None
    key, facts, repo = found
    derived: dict[str, object] = {}
    quantization = m.quantization or facts.native_dtype
    if m.quantization is None:
        derived["quantization"] = quantization
    if quantization == "mxfp4" and facts.native_dtype != "mxfp4":
        problems.append(Problem(f"{where}.quantization", "mxfp4 is only served for checkpoints published in MXFP4 (gpt-oss)"))
        return None
    max_len = m.max_model_len or min(facts.max_context, DEFAULT_MAX_MODEL_LEN)
    if m.max_model_len is None:
        derived["maxModelLen"] = max_len
    if max_len > facts.max_context:
        problems.append(Problem(f"{where}.maxModelLen", f"{max_len} exceeds the model's context of {facts.max_context} tokens"))
        return None
    if not _check_parallelism(m, where, facts, spec, problems):
        return None
    if m.autoscaling is not None:
        if spec.tier != "medium":
            problems.append(Problem(f"{where}.autoscaling", f"only the medium tier autoscales; remove it or set {where}.replicas"))
            return None
        a = m.autoscaling
        if a.min_replicas > a.max_replicas:
            problems.append(Problem(f"{where}.autoscaling.minReplicas", f"{a.min_replicas} exceeds maxReplicas {a.max_replicas}"))
            return None
        if m.replicas is not None and not a.min_replicas <= m.replicas <= a.max_replicas:
            problems.append(Problem(f"{where}.replicas", f"{m.replicas} is outside autoscaling bounds [{a.min_replicas}, {a.max_replicas}]"))
            return None
    if m.speculative_decoding and m.speculative_decoding.method in ("eagle", "eagle3", "draft_model") and not m.speculative_decoding.draft_model:
        problems.append(Problem(f"{where}.speculativeDecoding.draftModel", f"required for method {m.speculative_decoding.method!r}"))
        return None

    request = PlanRequest(
        model_key=key, model=facts, gpu_key=spec.gpu.type, quantization=quantization,
        max_model_len=max_len, qps=spec.slo.expected_qps, prompt_tokens=spec.slo.mean_prompt_tokens,
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
            f"{key} {quantization} at maxModelLen {max_len} does not fit tensorParallel {p.tensor_parallel} x "
            f"pipelineParallel {p.pipeline_parallel} on {spec.gpu.type}: {p.fit_advice}",
        ))
        return None
    if m.tensor_parallel is None:
        derived["tensorParallel"] = p.tensor_parallel
    if m.pipeline_parallel is None:
        derived["pipelineParallel"] = p.pipeline_parallel
    scaling = m.autoscaling
    replicas = m.replicas
    if replicas is None:
        replicas = p.replicas
        if scaling is not None:
            replicas = min(max(replicas, scaling.min_replicas), scaling.max_replicas)
        derived["replicas"] = replicas
    name = m.name or key.replace(".", "")
    budget = loading.startup_budget_s(p.weight_bytes_per_gpu)
    derived["startupBudgetSeconds"] = budget
    return ResolvedModel(
        spec=m, catalog_key=key, facts=facts, name=name, hf_repo=repo,
        served_model_name=m.served_model_name or repo, quantization=quantization,
        tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel,
        max_model_len=max_len, replicas=replicas,
        min_replicas=scaling.min_replicas if scaling else replicas,
        max_replicas=scaling.max_replicas if scaling else replicas,
        plan=p, startup_budget_s=budget, derived=derived,
    )


def _check_secrets(spec: StackSpec, models: list[ResolvedModel], present: set[str], plaintext: set[str],
                   require: bool, problems: list[Problem], warnings: list[str]) -> None:
    for key in sorted(plaintext):
        problems.append(Problem(key, f"must be a Pulumi secret: run `pulumi config set --secret {key} <value>`"))
    needed: dict[str, str] = {}
    if spec.security.api_auth:
        needed["apiKey"] = "security.apiAuth is true"
    gated = [m.name for m in models if m.facts.gated]
    if gated:
        needed["hfToken"] = f"model(s) {', '.join(gated)} are gated on Hugging Face"
    target = spec.target
    if isinstance(target, DockerHostTarget) and target.host not in ("localhost", "127.0.0.1"):
        needed["sshPrivateKey"] = f"target.host {target.host!r} is reached over SSH"
    for key, why in needed.items():
        if key in present or key in plaintext:
            continue
        message = f"required because {why}; set it with `pulumi config set --secret {key} <value>`"
        if require:
            problems.append(Problem(key, message))
        else:
            warnings.append(f"{key}: not set ({message}); rendered with a placeholder")


def resolve(spec: StackSpec, present: set[str], plaintext: set[str], require_secrets: bool) -> tuple[list[Problem], Optional[ResolvedStack]]:
    problems: list[Problem] = []
    warnings: list[str] = []
    if spec.target.kind not in TIER_TARGETS[spec.tier]:
        allowed = " or ".join(TIER_TARGETS[spec.tier])
        problems.append(Problem("target.kind", f"{spec.target.kind!r} does not match tier {spec.tier!r}; allowed: {allowed}"))
    names: dict[str, int] = {}
    models = []
    for i, m in enumerate(spec.models):
        resolved = _resolve_model(i, m, spec, problems)
        if resolved is None:
            continue
        if resolved.name in names:
            problems.append(Problem(f"models[{i}].name", f"{resolved.name!r} is already used by models[{names[resolved.name]}]; set a distinct name"))
        names[resolved.name] = i
        models.append(resolved)
    if len(models) == len(spec.models):
        total = available_gpus(spec)
        needed = sum(m.min_replicas * m.gpus_per_replica for m in models)
        if needed > total:
            detail = " + ".join(f"{m.name} {m.min_replicas}x{m.gpus_per_replica}" for m in models)
            problems.append(Problem("models", f"replicas need {needed} GPUs ({detail}) but only {total} are available; lower models[].replicas or add GPUs"))
    if spec.gateway.fallback_model and spec.gateway.fallback_model not in names:
        problems.append(Problem("gateway.fallbackModel", f"{spec.gateway.fallback_model!r} is not a model name{suggestion(spec.gateway.fallback_model, names)}; allowed: {', '.join(names)}"))
    for alias, target_name in spec.gateway.aliases.items():
        if target_name not in names:
            problems.append(Problem(f"gateway.aliases.{alias}", f"{target_name!r} is not a model name{suggestion(target_name, names)}; allowed: {', '.join(names)}"))
    if spec.gateway.aliases and spec.gateway.kind != "litellm":
        problems.append(Problem("gateway.aliases", "model aliases need gateway.kind: litellm (nginx routes by path, not model name)"))
    if spec.platform != PlatformSpec() and spec.tier != "medium":
        problems.append(Problem("platform", f"applies to the medium tier only (this stack is tier {spec.tier!r})"))
    if spec.tier == "medium":
        plat = spec.platform
        if not plat.kube_prometheus_stack.enabled and not plat.prometheus_url and any(m.autoscaling for m in spec.models):
            problems.append(Problem("platform.prometheusUrl", "required when platform.kubePrometheusStack.enabled is false: KEDA scales on a Prometheus query"))
        if plat.gpu_operator.mig_strategy != "none" and spec.gpu.type not in ("a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"):
            problems.append(Problem("platform.gpuOperator.migStrategy", f"{spec.gpu.type} does not support MIG; allowed: none"))
    if spec.gateway.kind == "litellm" and spec.tier != "small":
        problems.append(Problem("gateway.kind", "litellm is available on the small tier; the medium tier routes with its Ingress/HTTPRoute"))
    if spec.security.tls.enabled and not spec.security.tls.hostname:
        problems.append(Problem("security.tls.hostname", "required when security.tls.enabled is true"))
    if isinstance(spec.target, BaremetalTarget):
        for h, host in enumerate(spec.target.hosts):
            for n, model_name in enumerate(host.models):
                if model_name not in names:
                    problems.append(Problem(f"target.hosts[{h}].models[{n}]", f"{model_name!r} is not a model name{suggestion(model_name, names)}; allowed: {', '.join(names)}"))
    _check_secrets(spec, models, present, plaintext, require_secrets, problems, warnings)
    if problems:
        return problems, None
    return [], ResolvedStack(spec=spec, gpu=gpu_catalog()[spec.gpu.type], models=models,
                             secrets_present=frozenset(present), warnings=warnings)


__all__ = ["resolve", "available_gpus"]
