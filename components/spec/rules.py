"""Cross-field rules and planner-derived defaults, applied after the field-level checks.

Order: the tier (registry) and its target; the tier's own rules on the spec (its `checks` and
`risks` in the tier registry); each model, resolved once (components.spec.model_resolution);
names, references and duplicates; placement of every replica on the fleet
(components.planner.placement); the tier's rules on the resolved, placed models (its `resolved`
role); secrets; capacity warnings (components.spec.capacity); KV-cache / InferencePool rules. Every rule appends Problems instead of raising, so one run
reports everything that is wrong; a rule whose input already failed is skipped, so no error is
only the echo of another.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from components.facts import gpu_catalog
from components.planner import parallelism, placement
from components.spec import capacity
from components.spec.errors import Problem
from components.spec.fleet import fleet_for, total_gpus
from components.spec.model import DNS_LABEL, SECRET_KEYS, StackSpec
from components.spec.model_resolution import default_name, resolve_entry
from components.spec.resolved import ResolvedModel, ResolvedStack
from components.suggestions import suggestion
from components.tiers import TIERS

# Paths the gateways answer themselves (OpenAI API, vLLM's own endpoints, the gateway's health
# and metrics): a model `name` is also a path prefix (/<name>/v1/...), so it must not be one.
RESERVED_MODEL_NAMES = ("v1", "health", "metrics", "version", "ping", "load", "docs", "redoc", "openapi",
                        "tokenize", "detokenize", "invocations", "pooling", "score", "rerank", "classify",
                        "gateway", "stub-status", "server-info", "is-sleeping")


def _names(spec: StackSpec, problems: list[Problem]) -> dict[str, int]:
    """Model names (set or derived), checked for form and uniqueness."""
    names: dict[str, int] = {}
    for i, m in enumerate(spec.models):
        name = default_name(m)
        if name is None:
            continue
        key = f"models[{i}].name"
        if not re.fullmatch(DNS_LABEL, name):
            problems.append(Problem(key, f"{name!r} (derived from id) is not a DNS label (lowercase letters, digits, "
                                    "'-'; at most 42 characters): set models[].name"))
        elif name in RESERVED_MODEL_NAMES:
            problems.append(Problem(key, f"{name!r} is also an API path of the gateway (/{name}/...); "
                                    f"reserved: {', '.join(RESERVED_MODEL_NAMES)}"))
        if name in names:
            problems.append(Problem(key, f"{name!r} is already used by models[{names[name]}]; set a distinct name"))
        else:
            names[name] = i
    return names


def _served_names(spec: StackSpec, models: list[ResolvedModel], names: dict[str, int], problems: list[Problem]) -> None:
    """Clients select a model by its served name or an alias: each must mean one model."""
    served: dict[str, int] = {}
    for m in models:
        i = names[m.name]
        if m.served_model_name in served:
            problems.append(Problem(f"models[{i}].servedModelName",
                                    f"{m.served_model_name!r} is already served by models[{served[m.served_model_name]}]; "
                                    "requests could not tell them apart: set a distinct servedModelName"))
        served.setdefault(m.served_model_name, i)
    for alias, target in spec.gateway.aliases.items():
        if alias in served or alias in names:
            problems.append(Problem(f"gateway.aliases.{alias}",
                                    f"{alias!r} is already a served model name or model name; an alias may not shadow it"))
        if target not in names:
            problems.append(Problem(f"gateway.aliases.{alias}", f"{target!r} is not a model name"
                                    f"{suggestion(target, names)}; allowed: {', '.join(names)}"))


def _references(spec: StackSpec, names: dict[str, int], problems: list[Problem]) -> None:
    fallback = spec.gateway.fallback_model
    if fallback and fallback not in names:
        problems.append(Problem("gateway.fallbackModel", f"{fallback!r} is not a model name{suggestion(fallback, names)}; "
                                f"allowed: {', '.join(names)}"))
    hosts = getattr(spec.target, "hosts", None) or []
    for h, host in enumerate(hosts):
        for n, name in enumerate(host.models):
            if name not in names:
                problems.append(Problem(f"target.hosts[{h}].models[{n}]", f"{name!r} is not a model name"
                                        f"{suggestion(name, names)}; allowed: {', '.join(names)}"))


def _generic(spec: StackSpec, problems: list[Problem]) -> None:
    entry = TIERS[spec.tier]
    if spec.target.kind not in entry.targets:
        problems.append(Problem("target.kind", f"{spec.target.kind!r} does not match tier {spec.tier!r}; "
                                f"allowed: {' or '.join(entry.targets)}"))
    # A section only one tier reads (its registry entry's `section`) is refused on any other tier.
    for other in TIERS.values():
        section = other.section
        if not section or section == entry.section:
            continue
        field = StackSpec.model_fields[section]
        default = field.get_default(call_default_factory=True)
        if getattr(spec, section) != default:
            readers = [t.name for t in TIERS.values() if t.section == section]
            problems.append(Problem(section, f"applies to the {' and '.join(readers)} tier only (this stack is tier "
                                    f"{spec.tier!r}); remove it"))
    if spec.gateway.kind not in entry.gateways:
        offered = " and ".join(t.name for t in TIERS.values() if spec.gateway.kind in t.gateways)
        problems.append(Problem("gateway.kind", f"{spec.gateway.kind} is available on the {offered} tier; the "
                                f"{spec.tier} tier renders {' or '.join(entry.gateways)} (the Kubernetes tiers route "
                                "with their Ingress/HTTPRoute)"))
    if spec.gateway.aliases and spec.gateway.kind != "litellm":
        problems.append(Problem("gateway.aliases", "model aliases need gateway.kind: litellm (nginx routes by the served model name in the body but does not rewrite it, so it cannot map an alias)"))
    if spec.security.tls.enabled and not spec.security.tls.hostname:
        problems.append(Problem("security.tls.hostname", "required when security.tls.enabled is true"))


def _gateway_features(spec: StackSpec, problems: list[Problem]) -> None:
    """What each gateway kind really renders (components/small/project.py, templates/)."""
    gw = spec.gateway
    if gw.fallback_model and gw.kind != "litellm":
        problems.append(Problem("gateway.fallbackModel", "the nginx gateway (and the Kubernetes tiers' nginx model "
                                "router) has no fallback model (only LiteLLM's router `fallbacks` does): set "
                                "gateway.kind: litellm (small tier) or remove it"))
    if gw.fallback_model and gw.kind == "litellm" and len(spec.models) == 1 and gw.fallback_model == default_name(spec.models[0]):
        problems.append(Problem("gateway.fallbackModel", (
            f"{gw.fallback_model!r} is the stack's only model: LiteLLM falls back from every other model to it, so "
            "there is nothing to fall back from; add the model it should back up, or remove fallbackModel")))
    if gw.kind == "litellm":
        defaults = type(gw)()
        for name, camel in (("connect_timeout_s", "connectTimeoutS"), ("max_request_body_mb", "maxRequestBodyMb")):
            if getattr(gw, name) != getattr(defaults, name):
                problems.append(Problem(f"gateway.{camel}", (
                    "applies to the nginx gateway; the rendered LiteLLM config (litellm/config.yaml) does not set it, "
                    "so it would be ignored: use gateway.kind: nginx, or remove it")))
    # Affinity lives in the nginx gateway's own upstreams (one per replica on the ring): LiteLLM has
    # none, the Kubernetes router has one Service per model (kube-proxy picks the pod), and bare
    # metal has no gateway, so there the key would do nothing.
    for i, m in enumerate(spec.models):
        if m.routing.affinity == "none":
            continue
        where = (f"gateway.kind: {gw.kind} has no per-replica upstreams" if gw.kind != "nginx" else
                 None if TIERS[spec.tier].replica_upstreams else
                 f"the {spec.tier} tier's gateway does not hold individual replicas")
        if where:
            problems.append(Problem(f"models[{i}].routing.affinity", (
                f"{m.routing.affinity!r} needs the small tier's nginx gateway ({where}); on Kubernetes use "
                "platform.routing.inferencePool for prefix-aware routing; allowed here: none")))
    if gw.kind == "litellm" and spec.security.tls.enabled:
        problems.append(Problem("security.tls.enabled", (
            "the rendered LiteLLM gateway serves plain HTTP (its container gets no --ssl_keyfile_path/"
            "--ssl_certfile_path and no certificate volume): clients would connect in clear text; use gateway.kind: "
            "nginx for TLS, or terminate TLS in front of it and set tls.enabled: false")))


def _placed(spec: StackSpec, models: list[ResolvedModel], result: placement.FleetPlacement) -> list[ResolvedModel]:
    out = []
    for m in models:
        replicas = tuple(result.for_model(m.name))
        out.append(dataclasses.replace(m, placement=replicas, gpu_type=replicas[0].gpu_type if replicas else spec.gpu.type))
    return out


def _accepted_gpu_types(spec: StackSpec, fleet: placement.Fleet, m: ResolvedModel) -> tuple[str, ...]:
    """The stack's GPU type first, then every other type in the fleet where the same
    tensorParallel x pipelineParallel holds the model at its maxModelLen."""
    fleet_types = {n.gpu_type for n in fleet.nodes}
    accepted = [spec.gpu.type]
    for gpu_type in sorted(fleet_types - {spec.gpu.type}):
        fit = parallelism.evaluate(m.facts, gpu_catalog()[gpu_type], m.quantization, m.tensor_parallel,
                                   m.pipeline_parallel, m.max_model_len, m.spec.gpu_memory_utilization,
                                   m.spec.kv_cache_dtype)
        if fit.max_concurrent_sequences >= 1:
            accepted.append(gpu_type)
    return tuple(accepted)


def _place(spec: StackSpec, fleet: placement.Fleet, models: list[ResolvedModel], names: dict[str, int],
           problems: list[Problem]) -> Optional[placement.FleetPlacement]:
    demands = [placement.ModelDemand(m.name, m.tensor_parallel, _accepted_gpu_types(spec, fleet, m), m.pipeline_parallel,
                                     replicas=m.min_replicas, where=f"models[{names[m.name]}]")
               for m in models]
    result = placement.solve(fleet, demands)
    problems += [Problem(p.path, p.message) for p in result.problems]
    return result if result.ok else None


def _check_secrets(spec: StackSpec, models: list[ResolvedModel], present: set[str], plaintext: set[str],
                   require: bool, problems: list[Problem], notes: list[str]) -> None:
    for key in sorted(plaintext):
        problems.append(Problem(key, f"must be a Pulumi secret: run `pulumi config set --secret {key} <value>`"))
    needed: dict[str, str] = {}
    if spec.security.api_auth:
        needed["apiKey"] = "security.apiAuth is true"
    gated = [m.name for m in models if m.facts.gated]
    if gated:
        needed["hfToken"] = f"model(s) {', '.join(gated)} are gated on Hugging Face"
    host = getattr(spec.target, "host", None)
    if spec.target.kind == "docker-host" and host not in ("localhost", "127.0.0.1"):
        needed["sshPrivateKey"] = f"target.host {host!r} is reached over SSH"
    for key, why in needed.items():
        assert key in SECRET_KEYS
        if key in present or key in plaintext:
            continue
        message = f"required because {why}; set it with `pulumi config set --secret {key} <value>`"
        if require:
            problems.append(Problem(key, message))
        else:
            notes.append(f"{key}: not set ({message}); rendered with a placeholder")


def resolve(spec: StackSpec, present: set[str], plaintext: set[str], require_secrets: bool) -> tuple[list[Problem], Optional[ResolvedStack]]:
    problems: list[Problem] = []
    notes: list[str] = []
    _generic(spec, problems)
    _gateway_features(spec, problems)
    tier = TIERS[spec.tier]
    risky = tier.call("risks", spec)
    problems += tier.function("checks")(spec)
    names = _names(spec, problems)
    fleet = fleet_for(spec)
    total = total_gpus(fleet)
    models = [r for i, m in enumerate(spec.models) if (r := resolve_entry(i, m, spec, total, problems)) is not None]
    all_resolved = len(models) == len(spec.models) and len(names) == len(spec.models)
    result = None
    placed: list[ResolvedModel] = []
    if all_resolved:
        _references(spec, names, problems)
        _served_names(spec, models, names, problems)
        if not problems:
            # The same nodes; the resolved models only settle their failure domains (fleet.eks_zones).
            result = _place(spec, fleet_for(spec, models), models, names, problems)
        if result is not None:
            # Resolution -> placement -> the tier's rules on the resolved models, each once.
            placed = _placed(spec, models, result)
            problems += tier.call("resolved", spec, placed)
    _check_secrets(spec, models, present, plaintext, require_secrets, problems, notes)
    if problems:
        return problems, None
    warnings = risky + capacity.warnings_for(spec, placed, total) + [Problem("placement", w) for w in result.warnings]
    resolved = ResolvedStack(spec=spec, gpu=gpu_catalog()[spec.gpu.type], models=placed,
                             secrets_present=frozenset(present), warnings=warnings, notes=notes,
                             placement=result)
    problems += _resolved_problems(resolved)
    if problems:
        return problems, None
    return [], resolved


def _resolved_problems(stack: ResolvedStack) -> list[Problem]:
    """Checks that need the placed models (GPUs per pod, nodes per replica): KV-cache tiers
    (components/serving/kv_cache.py) and KV-aware routing (components/medium/inference_pool.py).
    Each returns 'key: message' strings."""
    from components.medium import inference_pool
    from components.serving import kv_cache

    out = []
    for text in [*kv_cache.problems(stack), *inference_pool.problems(stack)]:
        key, _, message = text.partition(": ")
        out.append(Problem(key, message))
    return out


__all__ = ["resolve", "RESERVED_MODEL_NAMES"]
