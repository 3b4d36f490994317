"""The large tier's entry in the tier registry: build the hub and spokes, export their outputs."""

from __future__ import annotations

import pulumi

from components.large.component import LargeTier, LargeTierArgs
from components.spec import ResolvedStack
from components.stack_names import stack_slug


def deploy(stack_name: str, stack: ResolvedStack, secret) -> pulumi.ComponentResource:
    component = LargeTier(stack_name, LargeTierArgs(stack=stack, stack_name=stack_slug(stack_name),
                                                    api_key=secret("apiKey"), hf_token=secret("hfToken")))
    pulumi.export("endpoint", component.endpoint)
    pulumi.export("regions", {name: {"namespace": s.namespace, "bucket": s.bucket_name,
                                     "clusterName": s.medium.eks.cluster_name if s.medium.eks else None}
                              for name, s in component.spokes.items()})
    pulumi.export("large", component.report)
    return component
