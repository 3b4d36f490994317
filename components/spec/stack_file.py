"""Read `stacks/Pulumi.<name>.yaml` plus the project defaults, as the Pulumi CLI would.

Secure values cannot be decrypted offline; they become a placeholder and their key is marked
secret, which is all the spec needs (secret values never reach rendered artifacts).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components import paths
from components import yaml12 as pulumi_yaml
from components.spec.errors import Problem, SpecError
from components.suggestions import suggestion
from components.spec.loader import NAMESPACE
from components.spec.pulumi_config import MERGE_SOURCE, StackValue, merge_project_config, validate_project
from components.spec.resolved import ResolvedStack

SECRET_PLACEHOLDER = "[secret]"


@dataclass
class StackConfig:
    name: str
    path: Path
    # Full keys ("tierscale:tier", "aws:region") to the string form Pulumi passes a program.
    values: dict[str, str]
    secret_keys: set[str]


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _as_pulumi_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def read_project(project_file: Path = paths.PROJECT_FILE) -> dict[str, Any]:
    project = pulumi_yaml.load(project_file.read_text()) or {}
    return project if isinstance(project, dict) else {}


def project_defaults(project_file: Path = paths.PROJECT_FILE) -> dict[str, Any]:
    project = read_project(project_file)
    out = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            out[key if ":" in key else f"{project['name']}:{key}"] = decl["default"]
    return out


def stack_path(name: str, stacks_dir: Path = paths.STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{name}.yaml"


def is_stack_file_ref(value: str) -> bool:
    """`--stack` names a file rather than a stack when it holds a path separator or ends in
    .yaml/.yml (a stack name may hold dots, `Prod.EU`, but never a slash)."""
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


def resolve_stack_ref(value: str, stacks_dir: Path = paths.STACKS_DIR) -> tuple[str, Path]:
    """`--stack` as the CLI takes it: a stack name (the file is stacks_dir/Pulumi.<name>.yaml),
    or a path to a `Pulumi.<name>.yaml` file, whose name gives the stack name and whose directory
    becomes the stacks directory. Raises SpecError on `--stack` for any other file name."""
    if not is_stack_file_ref(value):
        return value, stacks_dir
    path = Path(value).expanduser()
    file_name = path.name
    if not (file_name.startswith("Pulumi.") and file_name.endswith(".yaml")) or len(file_name) <= len("Pulumi..yaml"):
        raise SpecError([Problem("--stack", f"{value!r} is neither a stack name nor a Pulumi.<name>.yaml file; "
                                 "allowed: a stack name (stacks/Pulumi.<name>.yaml) or a path to Pulumi.<name>.yaml")],
                        f"stack {value}")
    if not path.is_file():
        raise SpecError([Problem("--stack", f"no stack file {value}; allowed: a stack name or an existing "
                                 "Pulumi.<name>.yaml file")], f"stack {value}")
    return file_name[len("Pulumi."):-len(".yaml")], path.resolve().parent


def read_stack(name: str, stacks_dir: Path = paths.STACKS_DIR, project_file: Path = paths.PROJECT_FILE) -> StackConfig:
    name, stacks_dir = resolve_stack_ref(name, stacks_dir)
    path = stack_path(name, stacks_dir)
    source = str(path)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise SpecError([Problem("--stack", f"no stack file {path.name}{suggestion(name, known)}; stacks: {', '.join(known)}")], source)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError([Problem(f"line {line}", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                 "Pulumi reads stack files as UTF-8: re-save the file as UTF-8")], source) from None
    try:
        doc = pulumi_yaml.load(text)
    except pulumi_yaml.DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise SpecError([Problem(f"line {mark.line + 1}, column {mark.column + 1}",
                                 f"{exc.problem}; Pulumi rejects a stack file with a repeated key: keep one")], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise SpecError([Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], source) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SpecError([Problem("", "a stack file is a mapping with a `config:` key")], source)
    problems = []
    for key in doc:
        if key not in ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"):
            problems.append(Problem(str(key), "unknown top-level key of a Pulumi stack file; allowed: config, secretsprovider, encryptedkey, encryptionsalt, environment"))
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        problems.append(Problem("config", "must be a mapping"))
        config = {}
    values: dict[str, str] = {}
    secrets: set[str] = set()
    as_cli: dict[str, StackValue] = {}
    for key, value in config.items():
        key = str(key)
        if ":" not in key:
            problems.append(Problem(key, f"config keys are namespaced; write {NAMESPACE}:{key}"))
            continue
        namespace = key.split(":", 1)[0]
        if namespace != NAMESPACE and suggestion(namespace, [NAMESPACE]):
            problems.append(Problem(key, f"unknown namespace {namespace!r}{suggestion(namespace, [NAMESPACE])}"))
            continue
        if _has_secure(value):
            secrets.add(key)
            top_secure = isinstance(value, dict) and set(value) == {"secure"}
            values[key] = SECRET_PLACEHOLDER if top_secure else json.dumps(value)
            as_cli[key] = StackValue(values[key], object=not top_secure, secure=True)
        else:
            values[key] = _as_pulumi_string(value)
            as_cli[key] = StackValue(values[key], object=isinstance(value, (dict, list)))
    if problems:
        raise SpecError(problems, source)
    # What `pulumi up` does next: validate Pulumi.yaml, merge its config block into the stack's
    # and refuse missing or mistyped keys (components/spec/pulumi_config.py, from the CLI source).
    project = read_project(project_file)
    project_errors = validate_project(project)
    if project_errors:
        raise SpecError([Problem(project_file.name, e) for e in project_errors], str(project_file))
    merged, errors = merge_project_config(name, project, as_cli)
    if errors:
        raise SpecError([Problem(key, f"{message} (Pulumi CLI rule: {MERGE_SOURCE})")
                         for key, message in errors], source)
    for key, value in merged.items():
        values.setdefault(key, value.text)
    return StackConfig(name=name, path=path, values=values, secret_keys=secrets)


def load_stack(name: str, stacks_dir: Path = paths.STACKS_DIR) -> ResolvedStack:
    """Read and resolve a stack file offline (secrets need only be declared, not readable)."""
    from components.spec.loader import load_spec
    from components.spec.pulumi_config import parse_value

    name, stacks_dir = resolve_stack_ref(name, stacks_dir)
    config = read_stack(name, stacks_dir)
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: parse_value(v) for k, v in config.values.items() if k.startswith(prefix)}
    secrets = {k[len(prefix):] for k in config.secret_keys if k.startswith(prefix)}
    return load_spec(values, secrets, source=f"stack {name}", require_secrets=False)
