"""The medium tier's entry in the tier registry: build the component, export its outputs."""

from __future__ import annotations

import pulumi

from components.medium.component import MediumTier, MediumTierArgs
from components.spec import ResolvedStack
from components.stack_names import stack_slug


def deploy(stack_name: str, stack: ResolvedStack, secret) -> pulumi.ComponentResource:
    component = MediumTier(stack_name, MediumTierArgs(
        stack=stack, stack_name=stack_slug(stack_name), api_key=secret("apiKey"),
        hf_token=secret("hfToken"), kubeconfig=secret("kubeconfig"),
    ))
    pulumi.export("namespace", component.namespace)
    pulumi.export("services", component.services)
    pulumi.export("endpoint", component.endpoint)
    if component.grafana_admin_password is not None:
        pulumi.export("grafanaAdminPassword", component.grafana_admin_password)
    if component.eks is not None:
        pulumi.export("clusterName", component.eks.cluster_name)
        pulumi.export("kubeconfig", component.eks.kubeconfig)
    return component
