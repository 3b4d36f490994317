"""What a caller may ask of the medium tier beyond its stack: the typed arguments through which
the large tier configures each regional MediumTier (pulumi/examples
aws-py-hub-and-spoke-network/spoke.py: the hub passes each spoke what it needs; nothing is
rewritten afterwards).

A plain medium stack uses the defaults: names by namespace, weights from Hugging Face, no
canary, no extra labels.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional

from components.spec.resolved import ResolvedModel

# Canary vs stable pods, the same labels as components/migration/rollouts.py (Argo Rollouts'
# canaryMetadata/stableMetadata): the ServiceMonitor copies the pod label to the series label
# `track`, so the migration gates select `{model="<m>",track="canary"}` vs `track="stable"`.
TRACK_LABEL = "tierscale.dev/track"
TRACK = "track"
CANARY, STABLE = "canary", "stable"
CANARY_SUFFIX = "-canary"


@dataclass(frozen=True)
class ModelSource:
    """Weights streamed from an S3 prefix instead of downloaded from Hugging Face: vLLM 0.32.0
    `--load-format runai_streamer` with an `s3://` model path (vllm/transformers_utils/
    runai_utils.py:16,40-41; vllm/model_executor/model_loader/runai_streamer_loader.py:27-86
    @v0.32.0), read by a ServiceAccount whose Pod Identity role may read the
    bucket. Each revision has its own prefix: `<prefix>/<hf repo>[/<revision>]`."""

    bucket: str
    prefix: str
    aws_region: str
    service_account: str
    concurrency: int

    def uri(self, m: ResolvedModel) -> str:
        path = f"{self.prefix}/{m.hf_repo}" + (f"/{m.spec.revision}" if m.spec.revision else "")
        return f"s3://{self.bucket}/{path}"

    def args(self, m: ResolvedModel, args: list[str]) -> list[str]:
        """`vllm serve` arguments reading `m`'s own revision from the bucket: the S3 prefix
        replaces the repo id, and `--revision` goes (an S3 prefix has no revisions; the
        revision is in the prefix)."""
        assert args[0] == m.hf_repo, args[:1]
        out = list(args)
        if "--revision" in out:
            k = out.index("--revision")
            del out[k:k + 2]
        out[0] = self.uri(m)
        return out + ["--load-format", "runai_streamer",
                      "--model-loader-extra-config", json.dumps({"concurrency": self.concurrency})]


@dataclass(frozen=True)
class Canary:
    """A second revision of a model behind the same served name: its own Deployment (HF
    `--revision`, or its own S3 prefix), `weight`% of the model's body-routed requests."""

    model: str  # the stable model's `name`
    revision: str
    weight: int  # percent, 1-50
    replicas: int


@dataclass(frozen=True)
class ServingOptions:
    """How the serving workloads run beyond what the stack says.

    labels          stamped on every vLLM pod, on every scraped series (ServiceMonitor
                    relabeling) and as Prometheus external labels (the large tier: region)
    model_source    weights from S3 (None: from Hugging Face)
    canaries        canary revisions (their Deployments, Services, PDBs, ServiceMonitors)
    canary_split    who splits a model's traffic between stable and canary: the model router
                    (nginx weights; every client path goes through it), or an Istio
                    VirtualService on the stable Service (the router then sends to the stable
                    Service only, and the mesh splits)
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    model_source: Optional[ModelSource] = None
    canaries: tuple[Canary, ...] = ()
    canary_split: Literal["router", "virtualservice"] = "router"

    def canary_for(self, model_name: str) -> Optional[Canary]:
        return next((c for c in self.canaries if c.model == model_name), None)


def canary_model(m: ResolvedModel, c: Canary) -> ResolvedModel:
    """The stable model as its canary runs it: the canary's revision and fixed replica count,
    the same served name (the body's `model` reaches either), its own workload name."""
    assert c.model == m.name
    spec = m.spec.model_copy(update={"revision": c.revision, "autoscaling": None, "replicas": c.replicas})
    return dataclasses.replace(m, spec=spec, name=m.name + CANARY_SUFFIX, replicas=c.replicas,
                               min_replicas=c.replicas, max_replicas=c.replicas, derived={})


DEFAULT = ServingOptions()
