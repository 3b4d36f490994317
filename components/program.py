"""The Pulumi program: read config, validate the spec, build the tier component, export.

`__main__.py` (under `pulumi up`) and `tierscale render` (under the mock runtime) both call
`run`, so the offline preview exercises exactly the code that deploys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.spec import NAMESPACE, ResolvedStack, load_spec
from components.spec.pulumi_config import read_runtime_config


@dataclass
class ProgramResult:
    stack: ResolvedStack
    component: pulumi.ComponentResource


def run(stack_name: str, require_secrets: bool = True) -> ProgramResult:
    """Raises SpecError before registering any resource when the config is invalid."""
    values, secret_keys = read_runtime_config()
    stack = load_spec(values, secret_keys, source=f"stack {stack_name}", require_secrets=require_secrets)
    config = pulumi.Config(NAMESPACE)
    secret = lambda key: config.get_secret(key) if key in stack.secrets_present else None  # noqa: E731
    tier = stack.spec.tier
    if tier == "small":
        from components.small.component import SmallTier, SmallTierArgs

        component = SmallTier(stack_name, SmallTierArgs(
            stack=stack, stack_name=stack_name, api_key=secret("apiKey"),
            hf_token=secret("hfToken"), ssh_private_key=secret("sshPrivateKey"),
        ))
        pulumi.export("endpoint", component.endpoint)
        if component.grafana_admin_password is not None:
            pulumi.export("grafanaUrl", component.grafana_url)
            pulumi.export("grafanaAdminPassword", component.grafana_admin_password)
    elif tier == "medium":
        from components.medium.component import MediumTier, MediumTierArgs

        component = MediumTier(stack_name, MediumTierArgs(
            stack=stack, stack_name=stack_name, api_key=secret("apiKey"),
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
    else:
        from components.baremetal.component import BaremetalArgs, BaremetalNodes

        component = BaremetalNodes(stack_name, BaremetalArgs(stack=stack, stack_name=stack_name))
        pulumi.export("hosts", component.hosts)
    pulumi.export("tier", tier)
    pulumi.export("models", {m.name: {
        "servedModelName": m.served_model_name, "tensorParallel": m.tensor_parallel,
        "pipelineParallel": m.pipeline_parallel, "replicas": m.replicas, "maxModelLen": m.max_model_len,
    } for m in stack.models})
    return ProgramResult(stack, component)
