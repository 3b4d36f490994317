"""Per-region manifests and the rewrites that turn the medium tier's manifests into a region's.

Pure functions over manifest dicts. `RegionContext.rewrite(doc)` is applied to every object the
region's MediumTier registers (a Pulumi transformation on the spoke) and to the objects this
tier adds, so Pulumi-applied and Git-rendered manifests are the same:
  - Deployments stream weights from the regional S3 bucket (vLLM v0.18.0
    `--load-format runai_streamer` with an s3:// model path, docs.vllm.ai
    models/extensions/runai_model_streamer; vllm/model_executor/model_loader/
    runai_streamer_loader.py) with a ServiceAccount whose Pod Identity role reads that bucket;
  - the HTTPRoute sends `canary.weight`% of a model's path to its canary Service;
  - ServiceMonitors stamp `region` on every scraped series, and kube-prometheus-stack carries it
    as an external label (federation, remote write, alerts).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

from components.large import facts
from components.medium import manifests
from components.medium.names import PART_OF, workload
from components.serving.vllm_args import VLLM_PORT
from components.spec import ResolvedStack
from components.spec.model import CanarySpec
from components.spec.resolved import ResolvedModel

REGION_LABEL = "region"
MODEL_READER_SA = "tierscale-model-reader"
CANARY_SUFFIX = "-canary"
# Retry only what never reached vLLM: a refused connection or a refused HTTP/2 stream. No
# perTryTimeout: a generation that streams for minutes must never be cut and retried.
RETRY_ON = "connect-failure,refused-stream"


@dataclass(frozen=True)
class RegionContext:
    region: str
    namespace: str
    stack: ResolvedStack  # the region's medium-shaped stack
    bucket: Optional[str]  # regional model bucket (None: load from Hugging Face as medium does)
    prefix: str
    aws_region: str
    canary: Optional[CanarySpec]

    def model_uri(self, m: ResolvedModel) -> str:
        path = f"{self.prefix}/{m.hf_repo}" + (f"/{m.spec.revision}" if m.spec.revision else "")
        return f"s3://{self.bucket}/{path}"

    def _model_for(self, deployment_name: str) -> Optional[ResolvedModel]:
        for m in self.stack.models:
            if deployment_name in (workload(m.name), workload(m.name + CANARY_SUFFIX)):
                return m
        return None

    def _deployment(self, doc: dict) -> dict:
        m = self._model_for(doc["metadata"]["name"])
        pod = doc["spec"]["template"]["spec"]
        labels = doc["spec"]["template"]["metadata"].setdefault("labels", {})
        labels[REGION_LABEL] = self.region
        if self.bucket is None or m is None:
            return doc
        pod["serviceAccountName"] = MODEL_READER_SA
        for c in pod["containers"]:
            if c.get("name") != "vllm" or c.get("args", [None])[0] != m.hf_repo:
                continue
            args = list(c["args"])
            if "--revision" in args:
                k = args.index("--revision")
                del args[k:k + 2]
            args[0] = self.model_uri(m)
            args += ["--load-format", "runai_streamer",
                     "--model-loader-extra-config", json.dumps({"concurrency": facts.streamer_concurrency()})]
            c["args"] = args
            c["env"] = list(c.get("env", [])) + [{"name": "AWS_REGION", "value": self.aws_region}]
        return doc

    def _route(self, doc: dict) -> dict:
        if self.canary is None or self.canary.routing != "httproute":
            return doc
        weights = {c.name: c.weight for c in self.canary.models if any(m.name == c.name for m in self.stack.models)}
        for rule in doc["spec"]["rules"]:
            refs = rule.get("backendRefs", [])
            if len(refs) == 1:
                name = next((n for n in weights if refs[0]["name"] == workload(n)), None)
                if name is not None:
                    rule["backendRefs"] = [
                        {**refs[0], "weight": 100 - weights[name]},
                        {**refs[0], "name": workload(name + CANARY_SUFFIX), "weight": weights[name]}]
        return doc

    def _service_monitor(self, doc: dict) -> dict:
        for ep in doc["spec"].get("endpoints", []):
            ep["relabelings"] = list(ep.get("relabelings", [])) + [
                {"action": "replace", "targetLabel": REGION_LABEL, "replacement": self.region}]
        return doc

    def rewrite(self, doc: dict) -> dict:
        """A copy of `doc` as this region runs it."""
        doc = copy.deepcopy(doc)
        kind = doc.get("kind")
        if kind == "Deployment":
            return self._deployment(doc)
        if kind == "HTTPRoute":
            return self._route(doc)
        if kind == "ServiceMonitor":
            return self._service_monitor(doc)
        return doc

    def prometheus_values(self, values: dict) -> dict:
        """kube-prometheus-stack values with the region as an external label."""
        out = dict(values)
        prom = dict(out.get("prometheus", {}))
        spec = dict(prom.get("prometheusSpec", {}))
        spec["externalLabels"] = {**spec.get("externalLabels", {}), REGION_LABEL: self.region}
        prom["prometheusSpec"] = spec
        out["prometheus"] = prom
        return out


def canary_model(m: ResolvedModel, revision: str, replicas: int) -> ResolvedModel:
    spec = m.spec.model_copy(update={"revision": revision, "autoscaling": None, "replicas": replicas})
    return dataclasses.replace(m, spec=spec, name=m.name + CANARY_SUFFIX, replicas=replicas, min_replicas=replicas,
                               max_replicas=replicas, derived={})


def canary_manifests(ctx: RegionContext) -> list[dict]:
    """Per canary model here: the medium tier's manifests for a second revision (its own
    Deployment, Service, PDB), and with `virtualservice` the Istio weights and retries."""
    if ctx.canary is None:
        return []
    docs: list[dict] = []
    for c in ctx.canary.models:
        m = next((m for m in ctx.stack.models if m.name == c.name), None)
        if m is None:
            continue
        canary = canary_model(m, c.revision, c.replicas)
        docs += [d for d in manifests.model_manifests(canary, ctx.stack, ctx.namespace)
                 if d["kind"] in ("Deployment", "Service", "PodDisruptionBudget", "PersistentVolumeClaim")]
        if ctx.canary.routing == "virtualservice":
            host = lambda name: f"{workload(name)}.{ctx.namespace}.svc.cluster.local"  # noqa: E731
            docs.append({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": workload(m.name), "namespace": ctx.namespace, "labels": dict(PART_OF)},
                "spec": {"hosts": [host(m.name)], "http": [{
                    "route": [
                        {"destination": {"host": host(m.name), "port": {"number": VLLM_PORT}}, "weight": 100 - c.weight},
                        {"destination": {"host": host(canary.name), "port": {"number": VLLM_PORT}}, "weight": c.weight}],
                    "retries": {"attempts": 2, "retryOn": RETRY_ON},
                }]},
            })
    return [ctx.rewrite(d) for d in docs]


def model_reader_service_account(ctx: RegionContext) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": MODEL_READER_SA, "namespace": ctx.namespace, "labels": dict(PART_OF)},
            "automountServiceAccountToken": False}
