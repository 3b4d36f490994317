"""Argo Rollouts for a model upgrade on the medium tier: the same canary steps and SLO gates
as `tierscale migrate run`, executed in the cluster by the Argo Rollouts controller.

For each model whose weights change between two medium stacks (same served name, another
revision or quantization: `plan_migration` says "upgraded") this renders:

- an `AnalysisTemplate` (argoproj.io/v1alpha1) whose metrics are exactly the plan's gates
  (`components/migration/gates.py`): one Prometheus metric per gate, `query` = the gate's
  PromQL, `successCondition: result[0] <= <threshold>` (thresholds from the destination's
  SLOs), `interval` = the gate evaluation interval, `failureLimit: 0` (one failed
  measurement fails the run), provider Prometheus at the stack's address
  (`platform.prometheusUrl`, else the kube-prometheus-stack Service the medium tier installs);
- a `Rollout` (argoproj.io/v1alpha1) that takes its pod template from the model's existing
  Deployment through `workloadRef` (Argo Rollouts docs, "Migrating to Rollouts" ->
  "Reference Deployment From Rollout": the Rollout references the Deployment, which is
  scaled down (`scaleDown`), and an update is made by changing the Deployment's pod
  template, which is what `pulumi up --stack DST` does). The canary steps are the plan's
  traffic steps: `setWeight: <percent>` then `pause: {duration: <hold>}`; the template runs
  as background analysis (`canary.analysis`, from the first pause on), so every gate is
  evaluated every interval during every hold and a failure aborts the rollout, which sets
  the canary weight back to zero (docs/features/analysis.md, "Background Analysis");
- the model's ServiceMonitor with one more relabeling, so Prometheus series carry the
  canary/stable label the gates select on (below).

Canary vs stable pods: Argo's ephemeral metadata (docs/features/ephemeral-metadata.md):
`canaryMetadata`/`stableMetadata` labels are put on the canary/stable ReplicaSets' pods
only while they have that role, "to allow prometheus ... queries and dashboards to be built,
which can rely on a consistent labels, rather than the rollouts-pod-template-hash which is
unpredictable and changing from revision to revision". The pods get
`tierscale.dev/track: canary|stable`; the ServiceMonitor copies that pod label to the series
label `track`; the gates' selectors are `{namespace=..., model=..., track="canary"}` (the
new weights, the plan's destination) and `track="stable"` (the old, the plan's source).

Traffic: plain replica-based canary, no `trafficRouting` (so no plugin configuration that
cannot be validated here). Without traffic management Argo approximates `setWeight` by the
ratio of canary to stable replicas, the nearest whole number of pods (docs/features/canary,
"important" note; `canary_split` ports the arithmetic): with few replicas the real share
is coarse, and `warnings` says so.

The plan's last step (100%) is the rollout's completion, not a gated pause: at 100% the
stable pods are gone, so the comparison gate (TTFT p99 vs the stable pods') has no data and
would abort a healthy rollout (`migrate run` substitutes the baseline measured before the
move; an AnalysisTemplate cannot). Argo stops the background analysis when the last step
completes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Optional

import yaml

from components import paths
from components.medium import autoscaling, manifests as med, monitoring
from components.medium.names import DEFAULT_PROMETHEUS_URL, workload
from components.migration import gates as gate_defs
from components.migration.plan import MigrationPlan, hold_seconds, plan_migration
from components.spec import ResolvedModel, ResolvedStack

ARGO_API = "argoproj.io/v1alpha1"
TRACK_LABEL = "tierscale.dev/track"  # the ephemeral pod label (Kubernetes)
TRACK = "track"  # the same as a Prometheus series label
CANARY, STABLE = "canary", "stable"
DEFAULT_EVAL_INTERVAL_S = 15  # as `migrate run --eval-interval`
# Deployment scale-down once the Rollout takes over: as the Rollout scales up (GPUs are not
# doubled), and scaled back up if the Rollout fails (docs/migrating.md).
SCALE_DOWN = "progressively"


class RolloutError(ValueError):
    """The move is not a model upgrade Argo Rollouts can run (the message says why)."""


@dataclass
class RolloutBundle:
    model: str
    analysis_template: dict
    rollout: dict
    service_monitor: dict
    # For an autoscaled model: its KEDA ScaledObject retargeted at the Rollout. Argo scales the
    # referenced Deployment down (workloadRef), so KEDA must scale the Rollout instead or the
    # two controllers fight over the pods.
    scaled_object: Optional[dict] = None
    warnings: list[str] = field(default_factory=list)

    def documents(self) -> dict[str, dict]:
        """File name -> manifest."""
        docs = {f"analysistemplate-{self.model}.yaml": self.analysis_template,
                f"rollout-{self.model}.yaml": self.rollout,
                f"servicemonitor-{self.model}.yaml": self.service_monitor}
        if self.scaled_object is not None:
            docs[f"scaledobject-{self.model}.yaml"] = self.scaled_object
        return docs


def _selector(ns: str, model: str, track: str) -> str:
    return f'{{namespace="{ns}",model="{model}",{TRACK}="{track}"}}'


def selectors(ns: str, model: str) -> tuple[str, str]:
    """(canary, stable) PromQL selectors: the plan's destination and source."""
    return _selector(ns, model, CANARY), _selector(ns, model, STABLE)


def prometheus_url(stack: ResolvedStack) -> str:
    return stack.platform.prometheus_url or DEFAULT_PROMETHEUS_URL


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds % 60 else f"{int(seconds // 60)}m"


def canary_split(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """(canary, stable) pods for `setWeight: weight` in a basic (replica-based) canary: a port
    of Argo Rollouts' approximateWeightedCanaryStableReplicaCounts
    (utils/replicaset/canary.go): the closest whole-pod split, surging by one pod when that is
    closer, never 0 canary pods for a weight of 1-99 with 2+ replicas; ties go to more canary."""
    if replicas == 0:
        return 0, 0
    exact = replicas * weight / 100
    ceil_c, floor_c = math.ceil(exact), math.floor(exact)
    tied = math.modf(exact)[0] == 0.5
    zero_allowed = weight in (0, 100) or (replicas == 1 and max_surge == 0)
    options = []
    if ceil_c < replicas or zero_allowed:
        options.append((ceil_c, replicas))
    if not tied and (floor_c != 0 or zero_allowed):
        options.append((floor_c, replicas))
    if max_surge > 0:
        options.append((ceil_c, replicas + 1))
        if math.modf((replicas + 1) * weight / 100)[0] != 0.5 and (floor_c != 0 or zero_allowed):
            options.append((floor_c, replicas + 1))
    if not options:
        return 0, replicas
    best = options[0]
    for option in options[1:]:
        if abs(option[0] * 100 / option[1] - weight) < abs(best[0] * 100 / best[1] - weight):
            best = option
    return best[0], best[1] - best[0]


def check_upgrade(src: ResolvedStack, dst: ResolvedStack, plan: MigrationPlan) -> list[ResolvedModel]:
    """The destination's models that Argo Rollouts upgrades, or RolloutError saying why not."""
    if (src.spec.tier, dst.spec.tier) != ("medium", "medium"):
        raise RolloutError(f"Argo Rollouts is rendered for a model upgrade within the medium tier; this move is "
                           f"{src.spec.tier} -> {dst.spec.tier}")
    if src.spec.target.namespace != dst.spec.target.namespace:
        raise RolloutError(f"the Rollout upgrades the model's Deployment in place, but the namespaces differ "
                           f"({src.spec.target.namespace} -> {dst.spec.target.namespace}): run it as a migration "
                           "(`migrate run` with the httproute back end)")
    upgraded = {c.name for c in plan.changes if c.change == "upgraded"}
    if not upgraded:
        raise RolloutError("no model changes its weights (revision or quantization) between the two stacks: "
                           "nothing for a canary of new weights ("
                           + ", ".join(f"{c.name}: {c.change}" for c in plan.changes) + ")")
    models = [m for m in dst.models if m.name in upgraded]
    multi = [m.name for m in models if m.multi_node]
    if multi:
        raise RolloutError(f"{', '.join(multi)} span nodes (a LeaderWorkerSet); Argo Rollouts manages Deployments "
                           "and ReplicaSets only")
    return models


def analysis_template(name: str, ns: str, model: ResolvedModel, gate_list: list[gate_defs.Gate], address: str,
                      eval_interval_s: float, initial_delay: str) -> dict:
    metrics = []
    for g in gate_list:
        if g.op != "<=":
            raise RolloutError(f"gate {g.name}: op {g.op!r} has no successCondition mapping")
        metrics.append({
            "name": g.name,
            "interval": _duration(eval_interval_s),
            # The first measurement once the gate's rate() window holds canary samples.
            "initialDelay": initial_delay,
            "failureLimit": 0,
            "successCondition": f"result[0] <= {g.threshold!r}",
            "provider": {"prometheus": {"address": address, "query": g.promql}},
        })
    return {
        "apiVersion": ARGO_API, "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": ns, "labels": med.labels(model),
                     "annotations": {"tierscale.dev/gates": "components/migration/gates.py"}},
        "spec": {"metrics": metrics},
    }


def canary_steps(traffic_steps: list[dict]) -> list[dict]:
    """setWeight + pause(hold) per plan step; the final 100% step is the rollout's completion."""
    steps: list[dict] = []
    for s in traffic_steps:
        if int(s["percent"]) >= 100:
            continue
        steps += [{"setWeight": int(s["percent"])}, {"pause": {"duration": _duration(hold_seconds(s["hold"]))}}]
    return steps


def rollout(model: ResolvedModel, ns: str, template_name: str, traffic_steps: list[dict]) -> dict:
    return {
        "apiVersion": ARGO_API, "kind": "Rollout",
        "metadata": {"name": workload(model.name), "namespace": ns, "labels": med.labels(model)},
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": med.selector(model)},
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload(model.name),
                            "scaleDown": SCALE_DOWN},
            "strategy": {"canary": {
                # As the Deployment: never below the serving count; surge models[].maxSurge.
                "maxSurge": model.spec.max_surge,
                "maxUnavailable": 0,
                "canaryMetadata": {"labels": {TRACK_LABEL: CANARY}},
                "stableMetadata": {"labels": {TRACK_LABEL: STABLE}},
                "analysis": {"templates": [{"templateName": template_name}], "startingStep": 1},
                "steps": canary_steps(traffic_steps),
            }},
        },
    }


def rollout_scaler(model: ResolvedModel, stack: ResolvedStack, ns: str) -> Optional[dict]:
    """The medium tier's ScaledObject for the model, scaling the Rollout (Argo Rollouts serves
    the scale subresource) instead of the Deployment the Rollout takes over."""
    if model.spec.autoscaling is None:
        return None
    doc = autoscaling.scaled_object(model, stack, ns)
    doc["spec"]["scaleTargetRef"] = {"apiVersion": ARGO_API, "kind": "Rollout", "name": workload(model.name)}
    return doc


def _label_name(k8s_label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in k8s_label)


def service_monitor(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    """The medium tier's ServiceMonitor for the model plus the pod label `tierscale.dev/track`
    as the series label `track` (absent on pods no Rollout manages)."""
    doc = monitoring.service_monitor(model, stack, ns)
    for endpoint in doc["spec"]["endpoints"]:
        endpoint["relabelings"] = list(endpoint.get("relabelings", [])) + [
            {"sourceLabels": [f"__meta_kubernetes_pod_label_{_label_name(TRACK_LABEL)}"], "targetLabel": TRACK,
             "action": "replace"}]
    return doc


def render(src_name: str, src: ResolvedStack, dst_name: str, dst: ResolvedStack,
           eval_interval_s: float = DEFAULT_EVAL_INTERVAL_S, window: str = gate_defs.WINDOW,
           strategy: Optional[str] = None) -> list[RolloutBundle]:
    plan = plan_migration(src_name, src, dst_name, dst, strategy, window=window)
    models = check_upgrade(src, dst, plan)
    ns = dst.spec.target.namespace
    bundles = []
    for m in models:
        canary, stable = selectors(ns, m.name)
        # The same gates as the plan, judged on the canary pods against the stable ones.
        gated = plan_migration(src_name, src, dst_name, dst, strategy, dst_selector=canary, src_selector=stable,
                               window=window)
        name = f"{workload(m.name)}-gates"
        warnings = []
        for s in gated.traffic_steps:
            p = int(s["percent"])
            if p >= 100:
                continue
            canary_n, stable_n = canary_split(m.replicas, p, m.spec.max_surge)
            share = 100 * canary_n / (canary_n + stable_n)
            if abs(share - p) >= 1:
                warnings.append(f"{m.name}: setWeight {p} with {m.replicas} replicas is {canary_n} canary and "
                                f"{stable_n} stable pod(s), so {share:.0f}% of requests (replica-based canary: "
                                "the Service balances over pods)")
        bundles.append(RolloutBundle(
            m.name,
            analysis_template(name, ns, m, gated.gates, prometheus_url(dst), eval_interval_s, window),
            rollout(m, ns, name, gated.traffic_steps),
            service_monitor(m, dst, ns), rollout_scaler(m, dst, ns), warnings))
    return bundles


@cache
def _schema(api_version: str, kind: str) -> Optional[dict]:
    group, _, version = api_version.rpartition("/")
    schema_file = paths.schemas_dir() / "crds" / group / f"{kind.lower()}_{version}.json"
    return json.loads(schema_file.read_text()) if schema_file.exists() else None


def schema_errors(doc: dict) -> list[str]:
    """The document against its CRD schema (jsonschema Draft 7, as `tierscale validate`'s
    kubernetes_crds); a missing schema is an error."""
    import jsonschema

    schema = _schema(doc["apiVersion"], doc["kind"])
    if schema is None:
        return [f"{doc['kind']}: no schema for {doc['apiVersion']} under {paths.schemas_dir() / 'crds'}"]
    return [f"{doc['kind']} {doc['metadata']['name']}: {'/'.join(map(str, e.path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def write(bundles: list[RolloutBundle], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for b in bundles:
        for filename, doc in b.documents().items():
            path = out_dir / filename
            path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
            written.append(path)
    return written
