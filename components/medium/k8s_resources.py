"""Register a manifest dict as the matching typed pulumi-kubernetes resource.

Built-in kinds use their typed class (so the Pulumi graph shows `kubernetes:apps/v1:Deployment`
and the provider applies its schema); anything else is a CustomResource.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_kubernetes as k8s

_MODULES = {
    "v1": k8s.core.v1,
    "apps/v1": k8s.apps.v1,
    "policy/v1": k8s.policy.v1,
    "networking.k8s.io/v1": k8s.networking.v1,
    "rbac.authorization.k8s.io/v1": k8s.rbac.v1,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def register(manifest: dict, opts: pulumi.ResourceOptions, name: str | None = None) -> pulumi.CustomResource:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    meta = manifest["metadata"]
    name = name or "-".join(p for p in (meta.get("namespace"), kind.lower(), meta["name"]) if p)
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    cls = getattr(_MODULES.get(api_version), kind, None)
    if cls is None:
        return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, opts=opts, **body)
    return cls(name, opts=opts, **{_snake(k): v for k, v in body.items()})
