"""`tierscale:medium:MediumTier`: models served on one Kubernetes cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.medium import k8s_resources, manifests
from components.spec import ResolvedStack
from components.spec.model import KubernetesTarget


@dataclass
class MediumTierArgs:
    stack: ResolvedStack
    stack_name: str
    api_key: Optional[pulumi.Input[str]] = None
    hf_token: Optional[pulumi.Input[str]] = None
    kubeconfig: Optional[pulumi.Input[str]] = None


class MediumTier(pulumi.ComponentResource):
    def __init__(self, name: str, args: MediumTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:medium:MediumTier", name, None, opts)
        target = args.stack.spec.target
        assert isinstance(target, KubernetesTarget)
        ns = target.namespace
        # An explicit provider: never deploy to whatever cluster the ambient kubeconfig points at
        # by accident when the stack names one.
        self.provider = k8s.Provider(
            f"{name}-cluster",
            kubeconfig=args.kubeconfig or target.kubeconfig,
            context=target.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        docs = manifests.serving_manifests(args.stack, ns)
        ns_resource = k8s_resources.register(docs[0], child)
        after_ns = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ns_resource])
        secret_data = pulumi.Output.all(args.api_key, args.hf_token).apply(
            lambda v: {k: s for k, s in (("api-key", v[0]), ("hf-token", v[1])) if s}
        )
        self.secret = k8s.core.v1.Secret(
            f"{ns}-secret-{manifests.SECRET_NAME}",
            metadata={"name": manifests.SECRET_NAME, "namespace": ns, "labels": dict(manifests.PART_OF)},
            type="Opaque",
            string_data=pulumi.Output.secret(secret_data),
            opts=after_ns,
        )
        self.resources = [ns_resource, self.secret] + [k8s_resources.register(d, after_ns) for d in docs[1:]]
        self.namespace = ns
        self.services = {m.served_model_name: f"vllm-{m.name}.{ns}.svc:8000" for m in args.stack.models}
        self.artifacts: dict[str, str] = {}
        self.register_outputs({"namespace": ns, "services": self.services})
