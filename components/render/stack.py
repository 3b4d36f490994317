"""`tierscale render`: the stack's resource graph and every artifact it deploys, on disk.

Layout of `build/<stack>/`:
  resources.json   every registered resource (URN, type, name, parent, dependencies, inputs;
                   secrets masked) and the stack outputs
  plan.json        the values the planner chose for each model
  compose/ ansible/ kubernetes/   the files each tier deploys
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from components import paths, program
from components.render.mock_runtime import SECRET_MASK, Registered, run_with_mocks
from components.spec import ResolvedStack
from components.spec.stack_file import read_stack

PROJECT = "tierscale"


@dataclass
class RenderResult:
    stack_name: str
    out_dir: Path
    stack: ResolvedStack
    resources: list[Registered]
    outputs: dict
    files: list[Path] = field(default_factory=list)

    def counts_by_type(self) -> Counter:
        return Counter(r.type for r in self.resources)


def kubernetes_manifests(resources: list[Registered]) -> list[dict]:
    """The manifests a stack applies, rebuilt from the registered kubernetes resources."""
    docs = []
    for r in resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm.sh") or r.type.startswith("pulumi:providers"):
            continue
        if "apiVersion" in r.inputs and "kind" in r.inputs:
            doc = {"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"]}
            doc.update({k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")})
            # A Secret's values are masked as a whole; the manifest keeps the map shape with
            # no values, so it stays valid and never carries a secret.
            for key in ("data", "stringData"):
                if doc["kind"] == "Secret" and doc.get(key) == SECRET_MASK:
                    doc[key] = {}
            docs.append(doc)
    return docs


# Apply order for the written files: what others reference first. Registration order under
# Pulumi is concurrent, so files are sorted for stable, reviewable output.
KIND_ORDER = ["Namespace", "StorageClass", "Secret", "ConfigMap", "NetworkPolicy", "PersistentVolumeClaim",
              "Deployment", "Service", "PodDisruptionBudget", "Ingress", "HTTPRoute", "ScaledObject",
              "ServiceMonitor", "PrometheusRule", "Application"]


def _apply_order(doc: dict) -> tuple:
    kind = doc["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = doc.get("metadata", {})
    return rank, meta.get("namespace", ""), meta.get("name", "")


def _manifest_filename(index: int, doc: dict) -> str:
    meta = doc.get("metadata", {})
    parts = [f"{index:03d}", doc["kind"].lower(), meta.get("namespace", ""), meta.get("name", "")]
    return "-".join(p for p in parts if p) + ".yaml"


def render_stack(name: str, out_dir: Optional[Path] = None, *, stacks_dir: Path = paths.STACKS_DIR,
                 extra_config: Optional[dict[str, str]] = None, extra_secret_keys: set[str] = frozenset()) -> RenderResult:
    """Render one stack. `extra_config` (full keys) overrides the stack file, as `pulumi config
    set` would; keys in `extra_secret_keys` are secrets. Raises SpecError on invalid config."""
    stack_config = read_stack(name, stacks_dir)
    config = dict(stack_config.values)
    config.update(extra_config or {})
    secret_keys = set(stack_config.secret_keys) | set(extra_secret_keys)
    result, monitor = run_with_mocks(PROJECT, name, config, secret_keys,
                                     lambda: program.run(name, require_secrets=False))
    out = Path(out_dir) if out_dir else paths.REPO_ROOT / "build" / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written: list[Path] = []

    def write(rel: str, content: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)

    write("resources.json", json.dumps({
        "stack": name,
        "resources": [r.to_json() for r in monitor.registered],
        "outputs": monitor.stack_outputs,
    }, indent=2, sort_keys=False) + "\n")
    write("plan.json", json.dumps({
        m.name: {"derived": m.derived, "plan": m.plan.to_json()} for m in result.stack.models
    }, indent=2) + "\n")
    for rel, content in sorted(getattr(result.component, "artifacts", {}).items()):
        write(rel, content)
    for i, doc in enumerate(sorted(kubernetes_manifests(monitor.registered), key=_apply_order)):
        write(f"kubernetes/{_manifest_filename(i, doc)}", yaml.safe_dump(doc, sort_keys=False))
    return RenderResult(name, out, result.stack, monitor.registered, monitor.stack_outputs, written)
