"""Is this pair of stacks a migration at all, and one clients survive? Checked by `migrate plan`
and `migrate run` before anything is planned or changed (issue #20 item 6, issue #23 item 4).

Refused, never acceptable:
  noop        the same stack, or a destination with the same tier, target, GPU and models:
              nothing to migrate (other differences are a `pulumi up` of the source)
  collision   both stacks deploy into the same place: the same Kubernetes cluster (kubeconfig
              context) and namespace (their objects have the same names: the HTTPRoute, the
              router, every model's Deployment), or the same host with the same published
              port or deploy directory (the second gateway cannot bind; the Compose projects
              overwrite each other's files)

Refused unless accepted with `--accept KIND` (then a warning), each naming the key and both values:
  removed-model  a model name (served name, or a gateway alias) the source answers to and the
                 destination does not: clients that send it get 404 once traffic moves
  context        a model's maxModelLen shrinks: requests longer than the destination's limit
                 that succeed today fail with 400
  capacity       the destination's most replicas x per-replica throughput (the planner's
                 figure at the destination's SLO) is below the load the source is sized for

Warned: the destination's minimum replicas carry less than the source's load (it relies on
autoscaling to reach it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from components.spec import ResolvedStack
from components.spec.errors import Problem

ACCEPTABLE = ("removed-model", "context", "capacity")


@dataclass(frozen=True)
class Finding:
    kind: str  # noop | collision | removed-model | context | capacity
    key: str
    message: str

    @property
    def acceptable(self) -> bool:
        return self.kind in ACCEPTABLE

    def problem(self) -> Problem:
        hint = f" (pass --accept {self.kind} to migrate anyway)" if self.acceptable else ""
        return Problem(self.key, self.message + hint)


@dataclass
class PairCheck:
    errors: list[Finding]
    warnings: list[str]

    def problems(self) -> list[Problem]:
        return [f.problem() for f in self.errors]


def _model_key(stack: ResolvedStack, name: str, field: str) -> str:
    i = next(i for i, m in enumerate(stack.models) if m.name == name)
    return f"models[{i}].{field}"


def _fingerprint(stack: ResolvedStack) -> tuple:
    models = sorted((m.served_model_name, m.name, m.hf_repo, m.spec.revision, m.quantization, m.tensor_parallel,
                     m.pipeline_parallel, m.min_replicas, m.max_replicas, m.max_model_len) for m in stack.models)
    return (stack.spec.tier, stack.spec.target.model_dump(mode="json"), stack.spec.gpu.model_dump(mode="json"),
            tuple(models))


def _host(address: str) -> str:
    a = address.strip().lower()
    if a in ("localhost", "127.0.0.1", "::1", "ip6-localhost"):
        return "localhost"
    try:
        return str(ipaddress.ip_address(a))
    except ValueError:
        return a.rstrip(".")


def _host_ports(stack: ResolvedStack) -> dict[tuple[str, int], str]:
    """(host, port) -> what binds it, for the tiers that publish ports on hosts."""
    t = stack.spec.target
    port = stack.spec.gateway.port
    out: dict[tuple[str, int], str] = {}
    if t.kind == "docker-host":
        host = _host(t.host)
        out[(host, port)] = "gateway.port"
        if stack.spec.monitoring.enabled:
            from components.small.checks import GRAFANA_HOST_PORT, PROMETHEUS_HOST_PORT

            out[(host, PROMETHEUS_HOST_PORT)] = "monitoring (Prometheus on the host)"
            out[(host, GRAFANA_HOST_PORT)] = "monitoring (Grafana on the host)"
    elif t.kind == "baremetal":
        for h in t.hosts:
            out[(_host(h.address), port)] = f"gateway.port on target.hosts {h.name}"
    return out


def _namespaces(stack: ResolvedStack) -> dict[tuple, str]:
    """(cluster identity, namespace) -> the key that sets it, for the Kubernetes tiers. An EKS
    target creates its own cluster (named by its stack), so only existing clusters can collide."""
    t = stack.spec.target
    out: dict[tuple, str] = {}
    if t.kind == "kubernetes":
        out[((t.kubeconfig or "$KUBECONFIG", t.context or "(current context)"), t.namespace)] = "target.namespace"
    for i, region in enumerate(getattr(t, "regions", None) or []):
        if region.cluster == "kubernetes":
            ns = region.namespace or f"tierscale-{region.name}"
            out[((region.kubeconfig or "$KUBECONFIG", region.context or "(current context)"), ns)] = \
                f"target.regions[{i}].namespace"
    return out


def _served(stack: ResolvedStack) -> dict[str, str]:
    """Every model name clients may send -> the stack's model it reaches."""
    names = {m.served_model_name: m.name for m in stack.models}
    names.update({alias: target for alias, target in stack.spec.gateway.aliases.items()})
    return names


def check_pair(src_name: str, src: ResolvedStack, dst_name: str, dst: ResolvedStack,
               accept: tuple[str, ...] = (), in_place: bool = False) -> PairCheck:
    """`in_place`: the destination replaces the source's own objects (rolling strategy, an Argo
    Rollouts upgrade), so sharing their namespace or host is the point, not a collision."""
    errors: list[Finding] = []
    warnings: list[str] = []
    if src_name == dst_name:
        return PairCheck([Finding("noop", "--to", f"nothing to migrate: {dst_name!r} is the source stack "
                                  f"(--from {src_name!r}); to change a stack in place, edit its file and "
                                  f"`pulumi up --stack {src_name}`")], [])
    if _fingerprint(src) == _fingerprint(dst):
        return PairCheck([Finding("noop", "--to", f"nothing to migrate: {dst_name} has the same tier "
                                  f"({dst.spec.tier}), target, GPU and models as {src_name}; any other difference "
                                  f"is applied by `pulumi up --stack {src_name}`")], [])

    # -- collisions: the two stacks would overwrite each other ---------------------------------
    src_ns, dst_ns = _namespaces(src), _namespaces(dst)
    for where, key in dst_ns.items():
        if where in src_ns:
            (config, context), ns = where
            errors.append(Finding("collision", key, f"{dst_name} deploys to namespace {ns!r} on kube context "
                                  f"{context} ({config}), where {src_name} runs ({src_ns[where]} {ns!r}): the "
                                  "objects are named alike (HTTPRoute, model router, each model's Deployment) and "
                                  "would replace the source's; give the destination its own namespace"))
    src_ports, dst_ports = _host_ports(src), _host_ports(dst)
    clashes: dict[str, list[str]] = {}
    for where, key in dst_ports.items():
        if where in src_ports:
            host, port = where
            clashes.setdefault("gateway.port" if key.startswith("gateway.port") else "monitoring.enabled", []).append(
                f"port {port} on {host} ({dst_name}: {key}; {src_name}: {src_ports[where]})")
    for key, where in clashes.items():
        errors.append(Finding("collision", key, f"{dst_name} and {src_name} need the same host ports: "
                              f"{'; '.join(where)}; both must run side by side during the migration: choose "
                              "another port or host"))
    if src.spec.target.kind == dst.spec.target.kind == "docker-host":
        if _host(src.spec.target.host) == _host(dst.spec.target.host) and \
                src.spec.target.deploy_dir == dst.spec.target.deploy_dir:
            errors.append(Finding("collision", "target.deployDir", f"{dst_name} and {src_name} both deploy to "
                                  f"{dst.spec.target.deploy_dir} on {dst.spec.target.host}: the destination's files "
                                  "would overwrite the running source's"))

    # -- what clients lose ----------------------------------------------------------------------
    dst_served, src_served = _served(dst), _served(src)
    for name, model in src_served.items():
        if name not in dst_served:
            key = "gateway.aliases" if name in src.spec.gateway.aliases else "models"
            offers = ", ".join(sorted(dst_served)) or "nothing"
            errors.append(Finding("removed-model", key, f"{src_name} answers to model {name!r} ({model}); {dst_name} "
                                  f"does not (it serves: {offers}): clients that send {name!r} get 404 once "
                                  "traffic moves"))
    src_by_served = {m.served_model_name: m for m in src.models}
    for m in dst.models:
        old = src_by_served.get(m.served_model_name)
        if old is None:
            continue
        if m.max_model_len < old.max_model_len:
            errors.append(Finding("context", _model_key(dst, m.name, "maxModelLen"),
                                  f"{dst_name} serves {m.served_model_name} with maxModelLen {m.max_model_len}, "
                                  f"{src_name} with {old.max_model_len} ({_model_key(src, old.name, 'maxModelLen')}): "
                                  f"requests of {m.max_model_len + 1}-{old.max_model_len} tokens that succeed today "
                                  "would fail with HTTP 400"))
        per = m.plan.replica_capacity_qps
        load = old.expected_qps
        if per and load:
            most, least = m.max_replicas * per, m.min_replicas * per
            scale_key = _model_key(dst, m.name, "autoscaling.maxReplicas" if m.spec.autoscaling else "replicas")
            if most < load:
                errors.append(Finding("capacity", scale_key,
                                      f"{dst_name} can carry at most {m.max_replicas} x {per:.3g} = {most:.3g} req/s "
                                      f"of {m.served_model_name}; {src_name} is sized for {load:.3g} req/s "
                                      f"({_model_key(src, old.name, 'expectedQps')} or slo.expectedQps): at 100% "
                                      "the destination would queue and miss its SLO"))
            elif least < load:
                warnings.append(f"{_model_key(dst, m.name, 'autoscaling.minReplicas')}: {dst_name} starts with "
                                f"{m.min_replicas} x {per:.3g} = {least:.3g} req/s of {m.served_model_name}, below "
                                f"{src_name}'s {load:.3g} req/s: the later steps rely on autoscaling to reach it")
    if in_place:
        errors = [f for f in errors if f.kind != "collision"]
    kept: list[Finding] = []
    for f in errors:
        if f.kind in accept:
            warnings.append(f"accepted ({f.kind}): {f.problem().path}: {f.message}")
        else:
            kept.append(f)
    return PairCheck(kept, warnings)


def accept_values(values: Optional[list[str]]) -> tuple[str, ...]:
    """--accept values, checked: ValueError names a bad one and what is allowed."""
    for v in values or []:
        if v not in ACCEPTABLE:
            raise ValueError(f"--accept: {v!r} is not allowed; allowed: {', '.join(ACCEPTABLE)} "
                             "(a no-op or a collision cannot be accepted)")
    return tuple(values or ())
