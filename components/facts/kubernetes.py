"""Kubernetes versions and the features the medium tier needs from them (pure functions).

A neutral module: the spec (to reject a stack), the validators (on rendered manifests) and the
tests call it; it imports no tier code. Supported versions come from components/pins.yaml.

Facts, with their sources:
- `lifecycle.{preStop,postStart}.sleep` (PodLifecycleSleepAction, KEP-3960): alpha and off by
  default in 1.29, beta and on by default from 1.30, GA in 1.34
  (https://www.kubernetes.dev/resources/keps/3960/, kubernetes/enhancements#3960). The 1.29 API
  schema already has the field, so schema validation alone accepts it: a 1.29 API server with
  default feature gates rejects the pod.
- The supported window (pins.yaml `kubernetes.supported`) is where KEDA 2.17 is tested
  (1.30-1.32, https://keda.sh/docs/2.17/operate/cluster/).
"""

from __future__ import annotations

from typing import Any

from components import pins

# Minor version from which a feature is on by default on a stock cluster.
PRESTOP_SLEEP_SINCE = "1.30"


def minor(version: str) -> tuple[int, int]:
    """"1.30" -> (1, 30). Raises ValueError on anything else."""
    major, _, rest = version.strip().lstrip("v").partition(".")
    return int(major), int(rest.split(".")[0])


def kubernetes_feature_problems(version: str, uses_prestop_sleep: bool = True) -> list[str]:
    """Why manifests for Kubernetes `version` would not run (empty when they would).

    `uses_prestop_sleep`: the manifests use the lifecycle sleep action (every vLLM pod the medium
    tier renders does: it keeps a terminating pod serving while endpoints drain).
    One message per stack: an unsupported version names the features it lacks in the same line.
    """
    try:
        wanted = minor(version)
    except ValueError:
        return [f"Kubernetes version {version!r} is not a minor version like \"1.30\""]
    lacks = []
    if uses_prestop_sleep and wanted < minor(PRESTOP_SLEEP_SINCE):
        lacks.append(f"lifecycle.preStop.sleep (PodLifecycleSleepAction) is on by default only from {PRESTOP_SLEEP_SINCE}, "
                     f"alpha and off in {version}")
    supported = pins.KUBERNETES_VERSIONS
    if f"{wanted[0]}.{wanted[1]}" not in supported:
        reason = f": {'; '.join(lacks)}" if lacks else ""
        return [f"Kubernetes {version} is not supported by the medium tier (supported: {', '.join(supported)}){reason}"]
    return lacks


def uses_prestop_sleep(manifest: Any) -> bool:
    """Whether a manifest (any kind) has a container lifecycle hook with the sleep action."""
    if isinstance(manifest, dict):
        lifecycle = manifest.get("lifecycle")
        if isinstance(lifecycle, dict) and any(isinstance(h, dict) and "sleep" in h for h in lifecycle.values()):
            return True
        return any(uses_prestop_sleep(v) for v in manifest.values())
    if isinstance(manifest, list):
        return any(uses_prestop_sleep(v) for v in manifest)
    return False
