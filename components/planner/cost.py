"""Cost from AWS on-demand instance prices: the cheapest instance type that holds the replicas.

A replica without pipeline parallelism lives on one instance (several replicas share an
instance when it has room); with pipeline parallelism each stage takes its own instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from components.facts import GpuFacts

HOURS_PER_YEAR = 8760


@dataclass(frozen=True)
class Fleet:
    instance_type: Optional[str]
    instances: int
    usd_per_hour: Optional[float]

    @property
    def usd_per_year(self) -> Optional[float]:
        return None if self.usd_per_hour is None else self.usd_per_hour * HOURS_PER_YEAR


def cheapest_fleet(
    gpu: GpuFacts, replicas: int, tensor_parallel: int, pipeline_parallel: int, gpus_per_node: int,
    price_per_instance_hour: Optional[float] = None,
) -> Fleet:
    best: Optional[Fleet] = None
    for inst in gpu.aws_instances:
        if inst.gpus < tensor_parallel:
            continue
        if pipeline_parallel > 1:
            count = replicas * pipeline_parallel
        else:
            count = math.ceil(replicas / (inst.gpus // tensor_parallel))
        price = price_per_instance_hour if price_per_instance_hour is not None else inst.usd_per_hour
        fleet = Fleet(inst.type, count, count * price)
        if best is None or fleet.usd_per_hour < best.usd_per_hour:
            best = fleet
    if best is not None:
        return best
    # No AWS instance carries this GPU (e.g. RTX 4090): count self-hosted nodes, no price.
    per_node = gpus_per_node
    if pipeline_parallel > 1:
        nodes = replicas * pipeline_parallel
    else:
        nodes = math.ceil(replicas / max(1, per_node // tensor_parallel))
    hourly = None if price_per_instance_hour is None else nodes * price_per_instance_hour
    return Fleet(None, nodes, hourly)
