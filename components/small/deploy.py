"""The small tier's entry in the tier registry: build the component, export its outputs."""

from __future__ import annotations

import pulumi

from components.small.component import SmallTier, SmallTierArgs
from components.spec import ResolvedStack
from components.stack_names import stack_slug


def deploy(stack_name: str, stack: ResolvedStack, secret) -> pulumi.ComponentResource:
    component = SmallTier(stack_name, SmallTierArgs(
        stack=stack, stack_name=stack_slug(stack_name), api_key=secret("apiKey"),
        hf_token=secret("hfToken"), ssh_private_key=secret("sshPrivateKey"),
    ))
    pulumi.export("endpoint", component.endpoint)
    if component.grafana_admin_password is not None:
        pulumi.export("grafanaUrl", component.grafana_url)
        pulumi.export("grafanaAdminPassword", component.grafana_admin_password)
    return component
