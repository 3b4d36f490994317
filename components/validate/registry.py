"""Which validators apply to a rendered stack, and running them.

A validator whose tool is missing FAILS (it is reported, never skipped): `make setup`
installs every tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from components import paths
from components.spec import ResolvedStack


@dataclass
class Outcome:
    name: str
    ok: bool
    detail: str


def _tool(name: str) -> str | None:
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)


def _run(args: list[str]) -> tuple[bool, str]:
    proc = subprocess.run(args, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def compose_schema(out: Path) -> Outcome:
    import jsonschema

    schema_file = paths.schemas_dir() / "compose" / "compose-spec.json"
    if not schema_file.exists():
        return Outcome("compose-spec schema", False, f"schema not found: {schema_file} (set TIERSCALE_SCHEMAS)")
    schema = json.loads(schema_file.read_text())
    doc = yaml.safe_load((out / "compose" / "compose.yaml").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    detail = "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])
    return Outcome("compose-spec schema", not errors, detail or "compose.yaml valid")


def nginx_syntax(out: Path) -> Outcome:
    nginx = _tool("nginx")
    if nginx is None:
        return Outcome("nginx -t", False, "nginx not installed (make setup installs nginx-light)")
    conf = (out / "compose" / "nginx" / "nginx.conf").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        # Upstream names are Compose service names, resolvable only inside the Compose
        # network; nginx -t resolves them, so the check maps them to 127.0.0.1.
        conf = re.sub(r"(server )([a-z0-9-]+)(:\d+ )", r"\g<1>127.0.0.1\g<3>", conf)
        conf = re.sub(r"^(pid|error_log) [^ ;]+", lambda m: f"{m.group(1)} {tmp}/{m.group(1)}", conf, flags=re.M)
        conf = re.sub(r"(access_log) [^ ;]+", rf"\1 {tmp}/access.log", conf)
        conf = re.sub(r"(_temp_path) [^ ;]+", rf"\1 {tmp}", conf)
        path = Path(tmp) / "nginx.conf"
        path.write_text(conf)
        ok, text = _run([nginx, "-t", "-q", "-p", tmp, "-c", str(path), "-e", f"{tmp}/error.log"])
    return Outcome("nginx -t", ok, text or "syntax ok")


def promtool_config(out: Path) -> Outcome:
    promtool = _tool("promtool")
    if promtool is None:
        return Outcome("promtool check config", False, "promtool not installed (make setup installs prometheus)")
    ok, text = _run([promtool, "check", "config", "--syntax-only", str(out / "compose" / "prometheus" / "prometheus.yml")])
    return Outcome("promtool check config", ok, text.splitlines()[-1] if text else "")


def kubernetes_builtin(out: Path) -> Outcome:
    tool = _tool("kubernetes-validate")
    if tool is None:
        return Outcome("kubernetes-validate", False, "kubernetes-validate not installed")
    files = sorted((out / "kubernetes").glob("*.yaml"))
    builtin = [f for f in files if not _is_custom(yaml.safe_load(f.read_text()))]
    ok, text = _run([tool, "--strict", "--kubernetes-version", "1.30", "--quiet", *map(str, builtin)])
    return Outcome("kubernetes-validate --strict (1.30)", ok, text or f"{len(builtin)} manifests valid")


_BUILTIN_GROUPS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "autoscaling/v2", "batch/v1"}


def _is_custom(doc: dict) -> bool:
    return doc.get("apiVersion") not in _BUILTIN_GROUPS


def kubernetes_crds(out: Path) -> Outcome:
    import jsonschema

    checked, errors = 0, []
    for f in sorted((out / "kubernetes").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        if not _is_custom(doc):
            continue
        group, _, version = doc["apiVersion"].rpartition("/")
        schema_file = paths.schemas_dir() / "crds" / group / f"{doc['kind'].lower()}_{version}.json"
        if not schema_file.exists():
            errors.append(f"{f.name}: no schema {schema_file}")
            continue
        checked += 1
        for e in jsonschema.Draft7Validator(json.loads(schema_file.read_text())).iter_errors(doc):
            errors.append(f"{f.name}: {'/'.join(map(str, e.path))}: {e.message}")
    return Outcome("CRD schemas", not errors, "; ".join(errors[:10]) or f"{checked} custom resources valid")


def ansible_inventory(out: Path) -> Outcome:
    tool = _tool("ansible-inventory")
    if tool is None:
        return Outcome("ansible-inventory", False, "ansible-core not installed")
    ok, text = _run([tool, "-i", str(out / "ansible" / "inventory.yml"), "--list"])
    if ok:
        hosts = json.loads(text).get("_meta", {}).get("hostvars", {})
        return Outcome("ansible-inventory --list", bool(hosts), f"{len(hosts)} hosts parsed")
    return Outcome("ansible-inventory --list", False, text[-500:])


def applicable(stack: ResolvedStack) -> list[Callable[[Path], Outcome]]:
    """The validators for what this stack renders."""
    tier = stack.spec.tier
    if tier == "small":
        checks = [compose_schema, nginx_syntax]
        if stack.spec.monitoring.enabled:
            checks.append(promtool_config)
        return checks
    if tier == "medium":
        return [kubernetes_builtin, kubernetes_crds]
    return [ansible_inventory]


def validate_rendered(stack: ResolvedStack, out: Path) -> list[Outcome]:
    return [check(out) for check in applicable(stack)]
