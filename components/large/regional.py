"""What the large tier asks of each region's MediumTier, as its arguments (pure functions).

The hub passes each spoke exactly what it needs (pulumi/examples
aws-py-hub-and-spoke-network/spoke.py): `region_stack` is the region as a medium-shaped stack
(its cluster as the target, its namespace, its models with the region's replica bounds and
placement), `serving_options` the rest (components/medium/options.py):
  - the region as a label on every vLLM pod and scraped series, and as a Prometheus external
    label (federation, remote write, alerts);
  - weights streamed from the regional S3 bucket (vLLM 0.32.0 `--load-format runai_streamer`
    with an s3:// model path: vllm/transformers_utils/runai_utils.py:16,40-41,
    vllm/model_executor/model_loader/runai_streamer_loader.py:27-86 @v0.32.0) by a ServiceAccount whose Pod
    Identity role reads that bucket; each revision from its own prefix;
  - canary revisions: their own Deployments (their own `--revision`, or their own S3 prefix),
    `canary.weight`% of the model's body-routed requests split by the model router (or by an
    Istio VirtualService, `canary.routing: virtualservice`).
Nothing the MediumTier registers is rewritten afterwards.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from components.large import facts, sizing, traffic
from components.medium.names import PART_OF, workload
from components.medium.options import CANARY_SUFFIX, Canary, ModelSource, ServingOptions
from components.serving.vllm_args import VLLM_PORT
from components.spec import ResolvedStack
from components.spec.model import Autoscaling, CanarySpec, EksTarget, KubernetesTarget, Region

REGION_LABEL = "region"
MODEL_READER_SA = "tierscale-model-reader"
# Retry only what never reached vLLM: a refused connection or a refused HTTP/2 stream. No
# perTryTimeout: a generation that streams for minutes must never be cut and retried.
RETRY_ON = "connect-failure,refused-stream"


def region_stack(stack: ResolvedStack, region: Region) -> ResolvedStack:
    """The region as a medium-tier stack: its cluster as the target, the large tier's platform,
    its models (resolved once, by the resolver) with the region's replica bounds (KEDA) and
    their placement on its GPU nodes."""
    spec = stack.spec
    ns = sizing.namespace(region)
    if region.cluster == "eks":
        # GPU nodes come from Karpenter: the managed GPU node group is kept at zero.
        target = EksTarget.model_validate({
            "kind": "eks", "region": region.aws_region, "kubernetesVersion": region.kubernetes_version,
            "vpcCidr": region.vpc_cidr, "availabilityZones": region.availability_zones, "namespace": ns,
            "gpuNodeGroup": {"instanceType": sizing.instance_types(spec, region)[0], "minSize": 0, "maxSize": 1,
                             "desiredSize": 0},
            "systemNodeGroup": region.system_node_group.model_dump(by_alias=True)})
    else:
        target = KubernetesTarget.model_validate({
            "kind": "kubernetes", "kubeconfig": region.kubeconfig, "context": region.context, "namespace": ns,
            "gpuNodes": region.gpu_nodes, "kubernetesVersion": region.kubernetes_version})
    models = {m.name: m for m in stack.models}
    result = sizing.region_placement(spec, region, models, f"target.regions[{region.name}]")
    placed = []
    for rm in region.models:
        m = models[rm.name]
        scaling = (m.spec.autoscaling or Autoscaling()).model_copy(
            update={"min_replicas": rm.min_replicas, "max_replicas": rm.max_replicas})
        mspec = m.spec.model_copy(update={"autoscaling": scaling, "replicas": None})
        placed.append(dataclasses.replace(m, spec=mspec, replicas=rm.min_replicas, min_replicas=rm.min_replicas,
                                          max_replicas=rm.max_replicas, placement=tuple(result.for_model(m.name))))
    # The region's Ingress/HTTPRoute also serves its own gateway hostname: Route 53 health
    # checks send it as Host and SNI (components/large/traffic.py, region_hostnames).
    routing = spec.large.platform.routing
    hostnames = list(dict.fromkeys([*routing.additional_hostnames, traffic.region_hostnames([region])[region.name]]))
    platform = spec.large.platform.model_copy(update={"routing": routing.model_copy(
        update={"additional_hostnames": hostnames})})
    rspec = spec.model_copy(update={"tier": "medium", "target": target, "platform": platform,
                                    "models": [m.spec for m in placed]})
    return ResolvedStack(spec=rspec, gpu=stack.gpu, models=placed, secrets_present=stack.secrets_present,
                         placement=result)


def canaries(canary: Optional[CanarySpec], rstack: ResolvedStack) -> tuple[Canary, ...]:
    """The canary revisions of the models this region serves."""
    if canary is None:
        return ()
    served = {m.name for m in rstack.models}
    return tuple(Canary(c.name, c.revision, c.weight, c.replicas) for c in canary.models if c.name in served)


def serving_options(region: Region, rstack: ResolvedStack, bucket: Optional[str], prefix: str,
                    canary: Optional[CanarySpec]) -> ServingOptions:
    source = None
    if bucket is not None:
        source = ModelSource(bucket=bucket, prefix=prefix, aws_region=region.aws_region,
                             service_account=MODEL_READER_SA, concurrency=facts.streamer_concurrency())
    split = "virtualservice" if canary is not None and canary.routing == "virtualservice" else "router"
    return ServingOptions(labels={REGION_LABEL: region.name}, model_source=source,
                          canaries=canaries(canary, rstack), canary_split=split)


def virtual_services(options: ServingOptions, ns: str) -> list[dict]:
    """With `canary.routing: virtualservice`: per canary, an Istio VirtualService on the stable
    Service's host splitting mesh traffic (the router's requests to the stable Service) by the
    canary's weight, retrying only what never reached vLLM."""
    if options.canary_split != "virtualservice":
        return []
    docs = []
    for c in options.canaries:
        host = lambda name: f"{workload(name)}.{ns}.svc.cluster.local"  # noqa: E731
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": workload(c.model), "namespace": ns, "labels": dict(PART_OF)},
            "spec": {"hosts": [host(c.model)], "http": [{
                "route": [
                    {"destination": {"host": host(c.model), "port": {"number": VLLM_PORT}}, "weight": 100 - c.weight},
                    {"destination": {"host": host(c.model + CANARY_SUFFIX), "port": {"number": VLLM_PORT}},
                     "weight": c.weight}],
                "retries": {"attempts": 2, "retryOn": RETRY_ON},
            }]},
        })
    return docs


def model_reader_service_account(ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": MODEL_READER_SA, "namespace": ns, "labels": dict(PART_OF)},
            "automountServiceAccountToken": False}


def canary_gates(rstack: ResolvedStack, options: ServingOptions) -> dict[str, list]:
    """Per canaried model: the migration gates (components/migration/gates.py) judging the canary
    pods against the stable ones in the region's Prometheus: the selectors are the ones Argo
    Rollouts canaries use (components/migration/rollouts.selectors: namespace, model, track),
    which the canary/stable pod labels and their ServiceMonitors' relabelings produce."""
    from components.migration import gates, rollouts

    ns, slo = rstack.spec.target.namespace, rstack.spec.slo
    out = {}
    for c in options.canaries:
        canary_sel, stable_sel = rollouts.selectors(ns, c.model)
        out[c.model] = gates.gates(canary_sel, stable_sel, slo.ttft_p99_ms, slo.tpot_p99_ms)
    return out


def canary_gate_rules(rstack: ResolvedStack, options: ServingOptions) -> dict:
    """The canary gates as Prometheus recording rules `tierscale:canary:<gate>{model=...}` (one
    group per model; load them into the region's Prometheus, or check them with promtool)."""
    groups = []
    for model, gate_list in canary_gates(rstack, options).items():
        groups.append({"name": f"tierscale-canary-{model}", "rules": [
            {"record": f"tierscale:canary:{g.name}", "expr": g.promql, "labels": {"model": model}} for g in gate_list]})
    return {"groups": groups}

