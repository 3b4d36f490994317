"""Typed access to components/pins.yaml: every image, chart, package and platform version.

A neutral module (it imports nothing from the tiers, the spec or the planner), so the spec,
the tiers, the validators and the tests can all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PINS_FILE = Path(__file__).with_name("pins.yaml")


@dataclass(frozen=True)
class ChartPin:
    name: str
    repo: str
    version: str
    source: str


@cache
def data() -> dict:
    """The parsed pins file (read once)."""
    return yaml.safe_load(PINS_FILE.read_text())


def image(name: str) -> str:
    """The pinned image reference for `name` (a key under `images:`)."""
    return data()["images"][name]["image"]


def chart(name: str) -> ChartPin:
    entry = data()["charts"][name]
    return ChartPin(name, entry["repo"], entry["version"], entry["source"])


def charts() -> dict[str, ChartPin]:
    return {name: chart(name) for name in data()["charts"]}


def fabric_manager_package(branch: str) -> str:
    """NVIDIA's package name for the fabric manager of a driver branch."""
    return data()["packages"]["fabric_manager_package"].format(branch=branch)


def _packages() -> dict:
    return data()["packages"]


# Constants for the spec defaults and the tiers.
KUBERNETES_VERSIONS: tuple[str, ...] = tuple(data()["kubernetes"]["supported"])
DEFAULT_KUBERNETES_VERSION: str = data()["kubernetes"]["default"]
GATEWAY_API_MIN_VERSION: str = data()["gateway_api"]["minimum_version"]
GATEWAY_API_CHANNEL: str = data()["gateway_api"]["channel"]
DRIVER_BRANCH: str = _packages()["nvidia_driver_branch"]
CUDA_VERSION: str = _packages()["cuda"]
NCCL_VERSION: str = _packages()["nccl"]

assert DEFAULT_KUBERNETES_VERSION in KUBERNETES_VERSIONS, "pins.yaml: kubernetes.default must be a supported version"

# Karpenter's EC2NodeClass AMI alias (a dated EKS AMI release, never @latest).
KARPENTER_AMI_ALIAS: str = data()["node_images"]["karpenter_ami_alias"]
