"""Placement: put every replica of every model on real GPUs of a fleet.

Pure and spec-free. The caller describes the fleet (nodes with a GPU type, a GPU count and
optionally explicit device ids and the models they may serve) and the demand (per model:
tensor/pipeline parallel sizes, replicas, accepted GPU types, optionally a fixed set of
hosts), each with the key path (`where`) its problems are reported at. `solve()` returns a
`FleetPlacement` and never raises for an input problem; `place()` raises `PlacementError`
carrying every problem.

Rules:
- One TP group never leaves a node: every node a replica uses holds whole TP groups.
- Pipeline parallelism (PP) may stay inside one node: a replica whose TP x PP GPUs fit on one
  node's free GPUs is placed there (one rank group holding every stage; vLLM runs PP within a
  node as well and no cross-node network is needed). Otherwise it spans k = PP / s nodes, each
  holding s consecutive stages (s x TP GPUs, the same on every node, as a LeaderWorkerSet
  needs); the largest s that fits is used, s = 1 (one stage per node) last. All nodes of one
  replica have the same GPU type. The node holding stage 0 is the leader (rank group 0), the
  others are workers in stage order; nodes of one replica are taken in fleet order.
- Packing is best-fit decreasing: replicas are placed largest first (GPUs per replica, then
  TP, then the most constrained model, then model order and replica index), each on the
  node(s) of its most preferred accepted GPU type with the fewest free GPUs that still fit
  (ties: fleet order), taking the lowest free device ids. A replica is kept on one node when
  any accepted type allows it before it is split across nodes.
- Replicas of one model are spread across failure domains: among the nodes that fit, those
  holding the fewest of the model's replicas come first, by zone (`Node.zone`, when the fleet
  knows zones) and then by node; best fit decides among equals. Losing one host then loses
  the fewest replicas a model can lose on this fleet. When spreading leaves a replica without
  room that plain best fit would place, the whole fleet is packed by best fit alone and a
  warning names each model whose replicas share a node although other nodes exist.
- Deterministic: the same fleet and demand (in the same order) give the same placement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

from components.facts import gpu_catalog
from components.suggestions import suggestion

# --- input ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One machine with GPUs of one type.

    `gpus` is the number of GPUs the node has; `gpu_indices` (device ids: nvidia-smi index or
    UUID) restricts placement to those devices (default: "0".."gpus-1"). `serves` is the set
    of model names the node may serve (None: any model; empty: none). `where` is the key path
    problems about this node are reported at.
    """

    name: str
    gpu_type: str
    gpus: int
    gpu_indices: Optional[tuple[str, ...]] = None
    serves: Optional[frozenset[str]] = None
    pool: Optional[str] = None
    where: str = ""
    zone: Optional[str] = None

    def __post_init__(self) -> None:
        if self.gpu_indices is not None:
            object.__setattr__(self, "gpu_indices", tuple(str(i) for i in self.gpu_indices))
        if self.serves is not None:
            object.__setattr__(self, "serves", frozenset(self.serves))

    @property
    def devices(self) -> tuple[str, ...]:
        """The device ids placement may use, in order."""
        if self.gpu_indices is not None:
            return self.gpu_indices
        return tuple(str(i) for i in range(max(self.gpus, 0)))

    @property
    def capacity(self) -> int:
        return len(self.devices)


@dataclass(frozen=True)
class Fleet:
    """The nodes to place on. `tier` ("small", "medium", "baremetal") only shapes advice."""

    nodes: tuple[Node, ...]
    tier: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))


@dataclass(frozen=True)
class NodePool:
    """A Kubernetes node pool / node group: `nodes` identical nodes named `<name>-<i>`."""

    name: str
    gpu_type: str
    gpus_per_node: int
    nodes: int
    where: str = ""


@dataclass(frozen=True)
class ModelDemand:
    """What one model needs: `replicas` replicas of TP x PP GPUs on an accepted GPU type.

    `gpu_types` lists the accepted types in order of preference (the type the planner sized
    the model for first). `hosts`, when set, is the only set of nodes the model may use.
    """

    name: str
    tensor_parallel: int
    gpu_types: tuple[str, ...]
    pipeline_parallel: int = 1
    replicas: int = 1
    hosts: Optional[tuple[str, ...]] = None
    where: str = ""

    def __post_init__(self) -> None:
        types = (self.gpu_types,) if isinstance(self.gpu_types, str) else tuple(self.gpu_types)
        object.__setattr__(self, "gpu_types", types)
        if self.hosts is not None:
            object.__setattr__(self, "hosts", tuple(self.hosts))

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def gpus_per_node_needed(self) -> int:
        """The fewest GPUs one node must give a replica: one whole TP group."""
        return self.tensor_parallel


def small_host(gpu_type: str, gpus: int, gpu_device_ids: Optional[Sequence[str]] = None, *,
               name: str = "localhost", where: str = "target") -> Fleet:
    """The small tier's one host (`gpu.type`, `gpu.perNode`, `target.gpuDeviceIds`)."""
    indices = tuple(str(i) for i in gpu_device_ids) if gpu_device_ids is not None else None
    return Fleet((Node(name, gpu_type, gpus, gpu_indices=indices, where=where),), tier="small")


def pool_nodes(pool: NodePool) -> list[Node]:
    return [Node(f"{pool.name}-{i}", pool.gpu_type, pool.gpus_per_node, pool=pool.name, where=pool.where)
            for i in range(pool.nodes)]


def kubernetes_fleet(pools: Iterable[NodePool]) -> Fleet:
    """Medium tier: node pools expanded to nodes (`<pool>-0`, `<pool>-1`, ...)."""
    return Fleet(tuple(n for pool in pools for n in pool_nodes(pool)), tier="medium")


def baremetal_host(name: str, gpu_type: str, gpus: int, models: Optional[Iterable[str]] = None, *,
                   where: str = "") -> Node:
    """One bare-metal host; `models` (hosts[].models) is what it may serve (None: anything)."""
    return Node(name, gpu_type, gpus, serves=None if models is None else frozenset(models), where=where)


def baremetal_fleet(hosts: Iterable[Node]) -> Fleet:
    return Fleet(tuple(hosts), tier="baremetal")


# --- output --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankGroup:
    """The GPUs one node gives a replica, and the pipeline stages they run."""

    node: str
    gpu_indices: tuple[str, ...]
    stages: tuple[int, ...]


@dataclass(frozen=True)
class ReplicaPlacement:
    model: str
    replica: int
    gpu_type: str
    groups: tuple[RankGroup, ...]  # leader (stage 0) first, then workers in stage order

    @property
    def spans_nodes(self) -> bool:
        return len(self.groups) > 1

    @property
    def leader(self) -> RankGroup:
        return self.groups[0]

    @property
    def workers(self) -> tuple[RankGroup, ...]:
        return self.groups[1:]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(g.node for g in self.groups)

    @property
    def gpus_per_node(self) -> int:
        return len(self.groups[0].gpu_indices)

    @property
    def gpus(self) -> int:
        return sum(len(g.gpu_indices) for g in self.groups)


@dataclass(frozen=True, order=True)
class PlacementProblem:
    """Same shape as components.spec.errors.Problem: a key path and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PlacementError(ValueError):
    """Some replica cannot be placed, or the fleet/demand is inconsistent; see `problems`."""

    def __init__(self, problems: Sequence[PlacementProblem]):
        self.problems = list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__("\n".join([f"placement: {len(self.problems)} {noun}:"] + [f"  - {p}" for p in self.problems]))


@dataclass(frozen=True)
class FleetPlacement:
    replicas: tuple[ReplicaPlacement, ...]  # in demand order, then replica index
    free: dict[str, tuple[str, ...]]  # device ids left free per node (empty if the input was invalid)
    unplaced: tuple[tuple[str, int], ...] = ()  # (model, replica index) that found no room
    problems: tuple[PlacementProblem, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def for_model(self, name: str) -> list[ReplicaPlacement]:
        return [r for r in self.replicas if r.model == name]

    def free_gpus(self) -> dict[str, int]:
        return {node: len(ids) for node, ids in self.free.items()}


# --- validation ----------------------------------------------------------------------------

NodeList = Union[Fleet, Sequence[Node]]


def _key(where: str, suffix: str) -> str:
    return f"{where}.{suffix}" if where else suffix


def _validate(fleet: Fleet, demands: Sequence[ModelDemand]) -> list[PlacementProblem]:
    problems: list[PlacementProblem] = []
    known_types = list(gpu_catalog())
    seen: dict[str, Node] = {}
    for node in fleet.nodes:
        if node.name in seen:
            first = seen[node.name]
            problems.append(PlacementProblem(
                _key(node.where, "name"),
                f"{node.name!r} is already used by {first.where or 'another node'}; node names must be unique",
            ))
        else:
            seen[node.name] = node
        if node.gpu_type not in known_types:
            problems.append(PlacementProblem(
                _key(node.where, "gpuType"),
                f"{node.gpu_type!r} is not a known GPU type{suggestion(node.gpu_type, known_types)}; "
                f"known: {', '.join(known_types)}",
            ))
        if node.gpus < 0:
            problems.append(PlacementProblem(node.where, f"{node.name} has {node.gpus} GPUs; the count cannot be negative"))
        if node.gpu_indices is not None:
            ids = node.gpu_indices
            dupes = sorted({i for i in ids if ids.count(i) > 1}, key=ids.index)
            if dupes:
                problems.append(PlacementProblem(
                    _key(node.where, "gpuDeviceIds"),
                    f"{', '.join(dupes)} listed more than once; each GPU can be given out only once",
                ))
            if len(ids) > node.gpus:
                problems.append(PlacementProblem(
                    _key(node.where, "gpuDeviceIds"),
                    f"{len(ids)} device ids listed but {node.name} has {node.gpus} GPUs; list at most {node.gpus}",
                ))
            out_of_range = [i for i in ids if i.isdigit() and int(i) >= node.gpus]
            if out_of_range and node.gpus >= 0:
                problems.append(PlacementProblem(
                    _key(node.where, "gpuDeviceIds"),
                    f"index {', '.join(out_of_range)} out of range for {node.name}'s {node.gpus} GPUs "
                    f"(0..{node.gpus - 1})" if node.gpus else
                    f"index {', '.join(out_of_range)} given but {node.name} has no GPUs",
                ))
    names: dict[str, ModelDemand] = {}
    for d in demands:
        if d.name in names:
            problems.append(PlacementProblem(
                _key(d.where, "name"), f"{d.name!r} is already used by {names[d.name].where or 'another model'}",
            ))
        names.setdefault(d.name, d)
        for key, value, low in (("tensorParallel", d.tensor_parallel, 1), ("pipelineParallel", d.pipeline_parallel, 1),
                                ("replicas", d.replicas, 0)):
            if not isinstance(value, int) or value < low:
                problems.append(PlacementProblem(_key(d.where, key), f"{value!r} must be an integer >= {low}"))
        if not d.gpu_types:
            problems.append(PlacementProblem(d.where, f"{d.name} accepts no GPU type; name at least one"))
        for t in d.gpu_types:
            if t not in known_types:
                problems.append(PlacementProblem(
                    d.where, f"GPU type {t!r} is not known{suggestion(t, known_types)}; known: {', '.join(known_types)}",
                ))
        for h in d.hosts or ():
            if h not in seen:
                problems.append(PlacementProblem(
                    _key(d.where, "hosts"),
                    f"{h!r} is not a node{suggestion(h, seen)}; nodes: {', '.join(seen)}",
                ))
    return problems


# --- packing -------------------------------------------------------------------------------


def _count(gpus: int) -> str:
    return f"{gpus} GPU" if gpus == 1 else f"{gpus} GPUs"


def _types(d: ModelDemand) -> str:
    return " or ".join(d.gpu_types)


def _shape(d: ModelDemand) -> str:
    if d.pipeline_parallel > 1:
        return f"tensorParallel {d.tensor_parallel} x pipelineParallel {d.pipeline_parallel}"
    return f"tensorParallel {d.tensor_parallel}"


def _allowed(d: ModelDemand, node: Node) -> bool:
    """May this model run on this node at all (type, serves, hosts)?"""
    return (node.gpu_type in d.gpu_types
            and (node.serves is None or d.name in node.serves)
            and (d.hosts is None or node.name in d.hosts))


def _lists(d: ModelDemand, node: Node) -> bool:
    """Does the input name this node explicitly for this model?"""
    return (node.serves is not None and d.name in node.serves) or (d.hosts is not None and node.name in d.hosts)


def _splits(pp: int) -> list[int]:
    """Stages per node for a replica split across nodes, most per node first (excluding one node)."""
    return [s for s in range(pp - 1, 0, -1) if pp % s == 0]


class _Packer:
    def __init__(self, fleet: Fleet, spread: bool = True):
        self.order = {n.name: i for i, n in enumerate(fleet.nodes)}
        self.free: dict[str, list[str]] = {n.name: list(n.devices) for n in fleet.nodes}
        self.spread = spread
        self.on_node: dict[tuple[str, str], int] = {}  # (model, node) -> replicas with a rank group there
        self.in_zone: dict[tuple[str, Optional[str]], int] = {}

    def room(self, node: Node) -> int:
        return len(self.free[node.name])

    def crowding(self, d: ModelDemand, node: Node) -> tuple[int, int]:
        """How many of `d`'s replicas already share this node's zone and this node (0, 0 without spreading)."""
        if not self.spread:
            return (0, 0)
        zone = self.in_zone.get((d.name, node.zone), 0) if node.zone is not None else 0
        return (zone, self.on_node.get((d.name, node.name), 0))

    def placed(self, d: ModelDemand, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.on_node[(d.name, node.name)] = self.on_node.get((d.name, node.name), 0) + 1
            self.in_zone[(d.name, node.zone)] = self.in_zone.get((d.name, node.zone), 0) + 1

    def choose(self, d: ModelDemand, eligible: list[Node]) -> Optional[list[tuple[Node, tuple[int, ...]]]]:
        tp, pp = d.tensor_parallel, d.pipeline_parallel
        pref = {t: i for i, t in enumerate(d.gpu_types)}
        whole = [n for n in eligible if self.room(n) >= tp * pp]
        if whole:
            best = min(whole, key=lambda n: (pref[n.gpu_type], self.crowding(d, n), self.room(n), self.order[n.name]))
            return [(best, tuple(range(pp)))]
        for s in _splits(pp):
            k = pp // s
            for t in d.gpu_types:
                fits = sorted((n for n in eligible if n.gpu_type == t and self.room(n) >= tp * s),
                              key=lambda n: (self.crowding(d, n), self.room(n), self.order[n.name]))
                if len(fits) >= k:
                    chosen = sorted(fits[:k], key=lambda n: self.order[n.name])
                    return [(n, tuple(range(j * s, (j + 1) * s))) for j, n in enumerate(chosen)]
        return None

    def take(self, node: Node, count: int) -> tuple[str, ...]:
        ids, self.free[node.name] = self.free[node.name][:count], self.free[node.name][count:]
        return tuple(ids)


def _static_problems(d: ModelDemand, fleet: Fleet, eligible: list[Node],
                     listed_bad: bool) -> tuple[bool, Optional[PlacementProblem]]:
    """(blocked, why): whether no replica of `d` can ever be placed on this fleet, and the problem to report
    (None when the nodes that list the model already carry the explanation)."""
    problem = _why_blocked(d, fleet, eligible)
    if problem is None:
        return False, None
    if listed_bad and problem.path == _key(d.where, "tensorParallel"):
        return True, None
    return True, problem


def _why_blocked(d: ModelDemand, fleet: Fleet, eligible: list[Node]) -> Optional[PlacementProblem]:
    tp, pp = d.tensor_parallel, d.pipeline_parallel
    usable = [n for n in eligible if n.capacity > 0]
    if not usable:
        typed = [n for n in fleet.nodes if n.gpu_type in d.gpu_types]
        if not typed:
            have = ", ".join(f"{n.name} ({n.gpu_type})" for n in fleet.nodes) or "none"
            return PlacementProblem(d.where, (
                f"no node can serve {d.name}: it runs on {_types(d)} GPUs and no node has that type "
                f"(nodes: {have}); add {d.gpu_types[0] if d.gpu_types else 'GPU'} nodes or accept another GPU type"))
        allowed = [n for n in typed if _allowed(d, n)]
        if not allowed:
            def serving(n: Node) -> str:
                if d.hosts is not None and n.name not in d.hosts:
                    return "not in its hosts"
                return f"serves {', '.join(sorted(n.serves))}" if n.serves else "serves nothing"
            listing = ", ".join(f"{n.name} ({serving(n)})" for n in typed)
            return PlacementProblem(d.where, (
                f"no node may serve {d.name}: the {_types(d)} nodes do not list it ({listing}); "
                f"add {d.name} to the models of one of them"))
        return PlacementProblem(d.where, (
            f"no node may serve {d.name}: the {_types(d)} nodes that list it have no GPUs "
            f"({', '.join(n.name for n in allowed)})"))
    biggest = max(n.capacity for n in usable)
    if fleet.tier == "small" and tp * pp > biggest:
        host = usable[0]
        ids = f", the {len(host.gpu_indices)} listed in gpuDeviceIds" if host.gpu_indices is not None else ""
        key = _key(d.where, "pipelineParallel" if pp > 1 else "tensorParallel")
        if tp <= host.capacity and pp > 1:
            where_else = (f"{pp} nodes of {tp} GPUs, one pipeline stage each: the medium tier (Kubernetes, one "
                          f"replica across {pp} nodes) or the baremetal tier ({pp} hosts)")
        else:
            where_else = (f"nodes with at least {tp} GPUs: the medium tier (Kubernetes, multi-node via pipeline "
                          f"parallelism) or the baremetal tier")
        return PlacementProblem(key, (
            f"{d.name} needs {tp * pp} GPUs per replica ({_shape(d)}) but the small tier runs on one host "
            f"with {host.capacity} GPUs ({host.name}{ids}); run it on {where_else}"))
    if tp > biggest:
        best = [n.name for n in usable if n.capacity == biggest]
        return PlacementProblem(_key(d.where, "tensorParallel"), (
            f"{d.name} needs {tp} GPUs per node ({_shape(d)}; a tensor-parallel group stays on one node) but the "
            f"largest {_types(d)} node it may use has {biggest} ({', '.join(best)}); lower tensorParallel or add "
            f"nodes with {tp} GPUs"))
    if tp * pp > biggest:
        for s in _splits(pp):
            for t in d.gpu_types:
                if sum(1 for n in usable if n.gpu_type == t and n.capacity >= tp * s) >= pp // s:
                    return None
        holders = [n.name for n in usable if n.capacity >= tp]
        return PlacementProblem(_key(d.where, "pipelineParallel"), (
            f"one replica of {d.name} needs {tp * pp} GPUs ({_shape(d)}): {pp} nodes of one GPU type with {tp} GPUs "
            f"each, or one node with {tp * pp}; only {len(holders)} {_types(d)} node(s) it may use have {tp} "
            f"({', '.join(holders) or 'none'}); add nodes or lower pipelineParallel"))
    return None


def _room_list(d: ModelDemand, fleet: Fleet, packer: _Packer, exclude: str = "") -> str:
    room = [n for n in fleet.nodes
            if n.gpu_type in d.gpu_types and n.name != exclude and packer.room(n) >= d.tensor_parallel]
    return ", ".join(f"{n.name} ({packer.room(n)} free)" for n in room) or "none"


def _listed_node_problems(d: ModelDemand, fleet: Fleet, packer: _Packer) -> list[PlacementProblem]:
    """Problems at the key of each node the input names for `d` but that cannot run it."""
    problems = []
    for node in fleet.nodes:
        if not _lists(d, node):
            continue
        if node.capacity == 0:
            problems.append(PlacementProblem(_key(node.where, "models"), (
                f"{node.name} has 0 GPUs but is asked to serve {d.name}; remove it from this host's models "
                f"or give the host GPUs; hosts with room: {_room_list(d, fleet, packer, node.name)}")))
        elif node.gpu_type not in d.gpu_types:
            problems.append(PlacementProblem(node.where, (
                f"has {_count(node.gpus)} ({node.gpu_type}); {d.name} is planned for {_types(d)} ({d.where or d.name}); "
                f"hosts that can run it: {_room_list(d, fleet, packer, node.name)}")))
        elif node.capacity < d.tensor_parallel:
            per = "replica" if d.pipeline_parallel == 1 else "node"
            problems.append(PlacementProblem(node.where, (
                f"has {_count(node.capacity)} ({node.gpu_type}); {d.name} needs {d.tensor_parallel} per {per} "
                f"({_shape(d)}); hosts with room: {_room_list(d, fleet, packer, node.name)}")))
    return problems


def _replicas_problem(d: ModelDemand, fleet: Fleet, eligible: list[Node], placed: list[ReplicaPlacement],
                      packer: _Packer, all_placed: list[ReplicaPlacement]) -> PlacementProblem:
    leaders: dict[str, int] = {}
    for r in placed:
        leaders[r.leader.node] = leaders.get(r.leader.node, 0) + 1
    where = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in leaders.items())
    got = f"only {len(placed)} fit" + (f" ({where})" if placed else "")
    names = {n.name for n in eligible}
    others = sum(len(g.gpu_indices) for r in all_placed if r.model != d.name for g in r.groups if g.node in names)
    used = f"; other models use {others} GPUs of those nodes" if others else ""
    left = ", ".join(f"{n.name} ({packer.room(n)} free)" for n in eligible if packer.room(n)) or "none"
    # "lower replicas" only when there is a lower count to go to (never for 1 replica).
    hint = ("lower replicas or " if d.replicas > 1 else "") + (
        "add GPUs" if fleet.tier == "small" else f"add {d.gpu_types[0]} nodes")
    if others:
        hint += " or move other models off those nodes"
    noun = "replica" if d.replicas == 1 else "replicas"
    return PlacementProblem(_key(d.where, "replicas"), (
        f"{d.replicas} {noun} of {d.name} need {d.replicas} x {d.gpus_per_replica} GPUs ({_shape(d)}) on "
        f"{_types(d)} nodes; {got}{used}; free GPUs left there: {left}; {hint}"))


def _pack(fleet: Fleet, items: list, eligible: dict[str, list[Node]], spread: bool):
    packer = _Packer(fleet, spread)
    placed: dict[tuple[str, int], ReplicaPlacement] = {}
    for d, r in items:
        shape = packer.choose(d, eligible[d.name])
        if shape is None:
            continue
        groups = tuple(RankGroup(n.name, packer.take(n, d.tensor_parallel * len(stages)), stages)
                       for n, stages in shape)
        packer.placed(d, [n for n, _ in shape])
        placed[(d.name, r)] = ReplicaPlacement(d.name, r, shape[0][0].gpu_type, groups)
    return packer, placed


def solve(fleet: NodeList, demands: Iterable[ModelDemand]) -> FleetPlacement:
    """Place every replica; problems are returned in the result, never raised."""
    fleet = fleet if isinstance(fleet, Fleet) else Fleet(tuple(fleet))
    demands = tuple(demands)
    every = tuple((d.name, r) for d in demands for r in range(max(d.replicas, 0) if isinstance(d.replicas, int) else 0))
    problems = _validate(fleet, demands)
    if problems:
        return FleetPlacement(replicas=(), free={}, unplaced=every, problems=tuple(dict.fromkeys(problems)))

    eligible = {d.name: [n for n in fleet.nodes if _allowed(d, n)] for d in demands}
    # A model whose every usable node lists it and is too small: those nodes' problems explain it.
    listed_bad = {d.name: bool(usable) and all(_lists(d, n) and n.capacity < d.tensor_parallel for n in usable)
                  for d in demands for usable in [[n for n in eligible[d.name] if n.capacity > 0]]}
    blocked: dict[str, Optional[PlacementProblem]] = {}
    for d in demands:
        stuck, why = _static_problems(d, fleet, eligible[d.name], listed_bad[d.name])
        if stuck:
            blocked[d.name] = why

    order = {d.name: i for i, d in enumerate(demands)}
    eligible_gpus = {d.name: sum(n.capacity for n in eligible[d.name]) for d in demands}
    items = sorted(
        ((d, r) for d in demands if d.name not in blocked for r in range(d.replicas)),
        key=lambda item: (-item[0].gpus_per_replica, -item[0].tensor_parallel, eligible_gpus[item[0].name],
                          order[item[0].name], item[1]),
    )
    packer, placed = _pack(fleet, items, eligible, spread=True)
    spread_fallback = False
    if len(placed) < len(items):
        packed, packed_placed = _pack(fleet, items, eligible, spread=False)
        if len(packed_placed) > len(placed):
            packer, placed, spread_fallback = packed, packed_placed, True

    in_order = [placed[key] for key in every if key in placed]
    problems = []
    warnings: list[str] = []
    if spread_fallback:
        for d in demands:
            leaders = [r.leader.node for r in in_order if r.model == d.name]
            if len(leaders) > len(set(leaders)) and len(set(leaders)) < len([n for n in eligible[d.name] if n.capacity]):
                warnings.append(f"{d.where or d.name}: {d.name}'s replicas could not be spread over separate nodes "
                                f"without leaving a replica unplaced; {len(leaders)} replicas on "
                                f"{len(set(leaders))} node(s), so losing one loses several")
    for d in demands:  # problems in demand order: the model's own, then the nodes that list it
        if blocked.get(d.name) is not None:
            problems.append(blocked[d.name])
        problems += _listed_node_problems(d, fleet, packer)
        mine = [r for r in in_order if r.model == d.name]
        if d.name not in blocked and len(mine) < d.replicas:
            problems.append(_replicas_problem(d, fleet, eligible[d.name], mine, packer, in_order))
        if d.replicas and len(mine) == d.replicas:
            used = {g.node for r in mine for g in r.groups}
            for n in fleet.nodes:
                if (n.serves is not None and d.name in n.serves and n.name not in used
                        and n.gpu_type in d.gpu_types and n.capacity >= d.tensor_parallel):
                    warnings.append(f"{n.where or n.name}: lists {d.name} but none of its {d.replicas} replica(s) "
                                    f"was placed there")
    return FleetPlacement(
        replicas=tuple(in_order),
        free={n.name: tuple(packer.free[n.name]) for n in fleet.nodes},
        unplaced=tuple(key for key in every if key not in placed),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def place(fleet: NodeList, demands: Iterable[ModelDemand]) -> FleetPlacement:
    """Like `solve`, but raises PlacementError listing every problem when any replica does not fit."""
    result = solve(fleet, demands)
    if result.problems:
        raise PlacementError(result.problems)
    return result


__all__ = [
    "Fleet", "FleetPlacement", "ModelDemand", "Node", "NodePool", "PlacementError", "PlacementProblem",
    "RankGroup", "ReplicaPlacement", "baremetal_fleet", "baremetal_host", "kubernetes_fleet", "place",
    "pool_nodes", "small_host", "solve",
]
