"""In-process stand-ins for the runner's collaborators: a scripted Prometheus, a traffic back end
that records what it is asked (and can report its weight back), a driver that brings nothing up."""

from __future__ import annotations

from components.migration import gates as gate_defs
from components.migration.plan import plan_migration
from components.migration.traffic import TrafficError
from tests.support.stacks import small_stack


def short_plan(hold: str = "3s", strategy=None) -> dict:
    """small-dev -> small-next (the same models on another host) as `migrate run` journals it,
    with short holds; inline stacks, so the fault tests do not follow the example stacks' edits."""
    src = small_stack(target={"kind": "docker-host", "host": "gpu-1.example.com"})
    dst = small_stack(target={"kind": "docker-host", "host": "gpu-2.example.com"})
    plan = plan_migration("small-dev", src, "small-next", dst, strategy, window="10s").to_json()
    for step in plan["traffic_steps"]:
        step["hold"] = hold
    return plan


def scripted_prom(plan: dict, values: dict) -> "FakeProm":
    prom = FakeProm(values)
    prom.gates = {g["name"]: gate_defs.Gate(g["name"], g["promql"], g["op"], g["threshold"], g["unit"], g["why"])
                  for g in plan["gates"]}
    return prom


class FakeProm:
    def __init__(self, values):
        self.values = values  # gate name (or "baseline:<term>") -> list of values, last repeats
        self.gates = {}

    def recording_rules(self):
        return {}

    def query(self, expr):
        if expr.startswith("count(up"):
            return 2.0
        for name, g in self.gates.items():
            if expr == g.promql:
                seq = self.values.get(name, [0.0])
                return seq.pop(0) if len(seq) > 1 else seq[0]
            if "vector(" in expr and g.name in self.values.get("baseline_gates", []):
                return 0.0
        return 0.01  # baseline terms


class FakeTraffic:
    """Records each set_weight; `live` is what read_weight reports. `fail_zero` set_weight(0)
    calls raise (a reload that fails) and leave `live` as it was."""

    def __init__(self, log, fail_zero: int = 0, live: int = 0):
        self.log, self.fail_zero, self.live = log, fail_zero, live

    def set_weight(self, percent):
        self.log.append(("weight", percent))
        if percent == 0 and self.fail_zero:
            self.fail_zero -= 1
            raise TrafficError("nginx reload failed (injected)")
        self.live = percent

    def read_weight(self):
        return self.live

    def use_fallback(self):
        self.log.append(("fallback",))

    def describe(self):
        return "fake"


class FakeDriver:
    def __init__(self, log):
        self.log = log

    def check(self):
        pass

    def up(self, stack):
        self.log.append(("up", stack))
        return {"endpoints": {}}
