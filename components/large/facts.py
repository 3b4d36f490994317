"""components/facts/large.yaml, typed: topologies, health-check limits, spot notice, loading."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

FACTS_FILE = Path(__file__).resolve().parents[1] / "facts" / "large.yaml"


@cache
def data() -> dict:
    return yaml.safe_load(FACTS_FILE.read_text())


@dataclass(frozen=True)
class Topology:
    name: str
    availability_pct: float
    rto_s: int
    regions_min: int
    regions_max: int | None


def topology(name: str) -> Topology:
    t = data()["topologies"][name]
    return Topology(name, t["availability_pct"], t["rto_s"], t["regions_min"], t["regions_max"])


def spot_notice_s() -> int:
    return int(data()["spot"]["interruption_notice_s"])


def loader_bytes_per_s() -> float:
    return float(data()["model_loading"]["s3_streamer_bytes_per_s"])


def streamer_concurrency() -> int:
    return int(data()["model_loading"]["streamer_concurrency"])


def health(key: str):
    return data()["health_checks"][key]
