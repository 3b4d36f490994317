"""Read the `tierscale:` namespace from the Pulumi runtime, the way `pulumi up` delivers it.

The engine hands a Python program its config as strings (objects as JSON) plus the list of
secret keys; `render` sets the same two things through `pulumi.runtime.set_all_config`, so
the program has one code path for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from pulumi.runtime import config as runtime_config

from components.spec.loader import NAMESPACE


def parse_value(raw: Any) -> Any:
    """Objects and arrays arrive as JSON text; scalars stay as given."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def read_runtime_config(namespace: str = NAMESPACE) -> tuple[dict[str, Any], set[str]]:
    """(values, secret keys) of every `<namespace>:` key, prefix removed."""
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_full = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{namespace}:"
    values, secrets = {}, set()
    for key, raw in merged.items():
        if not key.startswith(prefix):
            continue
        short = key[len(prefix):]
        values[short] = parse_value(raw)
        if key in secret_full:
            secrets.add(short)
    return values, secrets


# --- The Pulumi CLI's project-config rules ------------------------------------------------
# `pulumi up`/`preview` merge Pulumi.yaml's `config:` block into the stack's config and
# validate it before the program starts. The rules below are ported from the CLI's source at
# the pinned tag (the newest tag in the pulumi/pulumi snapshot this project reads; the Python
# SDK in requirements.lock is 3.272.0, whose CLI runs the same functions):
CLI_SOURCE = "pulumi/pulumi@v3.259.0"
MERGE_SOURCE = f"{CLI_SOURCE} pkg/workspace/config.go mergeConfig"
PROJECT_SOURCE = f"{CLI_SOURCE}:sdk/go/common/workspace/project.go (Project.Validate, ValidateConfigValue, InferFullTypeName)"
# project.json's SimpleConfigType enum at the same tag.
SIMPLE_CONFIG_TYPES = ("string", "integer", "boolean", "array", "object")


@dataclass(frozen=True)
class StackValue:
    """One stack-file config value as the CLI's config.Value holds it: scalars become strings
    (object=False), mappings and lists JSON text (object=True); `secure` marks an encrypted
    value (its plaintext is unknown offline)."""

    text: str
    object: bool = False
    secure: bool = False


def _fmt_go(value: Any) -> str:
    """fmt.Sprintf("%v") of a YAML scalar as yaml.v3 decodes it (bool, int, string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def default_value(value: Any) -> StackValue:
    """createConfigValue: string/int/bool become plain values, anything else JSON (object)."""
    if isinstance(value, (str, bool, int)):
        return StackValue(_fmt_go(value))
    return StackValue(json.dumps(value), object=True)


def infer_full_type_name(type_name: str, items: Optional[dict]) -> str:
    if items is not None:
        return f"array<{infer_full_type_name(items.get('type', ''), items.get('items'))}>"
    return type_name


def validate_config_value(type_name: str, items: Optional[dict], value: Any) -> bool:
    """ValidateConfigValue, case by case (Go's int/float64/string/bool/map/[]any)."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value == int(value) if value == value and value not in (float("inf"), float("-inf")) else False
        if isinstance(value, str):
            return _go_atoi(value)
        return False
    if type_name == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(validate_config_value(items.get("type", ""), items.get("items"), item) for item in value)


def _go_atoi(text: str) -> bool:
    """strconv.Atoi: optional sign, ASCII digits only, fits in int64."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= c <= "9" for c in body):
        return False
    return -(2 ** 63) <= int(text) < 2 ** 63


def _is_project_key(project_name: str, key: str) -> bool:
    return ":" not in key or key.startswith(project_name + ":")


def _full_key(project_name: str, key: str) -> str:
    return key if ":" in key else f"{project_name}:{key}"


def validate_project(project: dict) -> list[str]:
    """Project.Validate: the errors `pulumi` prints before it reads any stack (it stops at the
    first; all are returned here, in the CLI's order within a key)."""
    errors = []
    name = str(project.get("name") or "")
    if not name:
        return ["project is missing a 'name' attribute"]
    for key, decl in (project.get("config") or {}).items():
        if not isinstance(decl, dict):
            continue  # a bare value is shorthand for `value:`
        if decl.get("default") is not None and decl.get("value") is not None:
            errors.append(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
            continue
        typed = decl.get("type") is not None
        type_name = decl.get("type") or ""
        if typed and type_name not in SIMPLE_CONFIG_TYPES:
            errors.append(f"project config '{key}': type {type_name!r} is not one of {', '.join(SIMPLE_CONFIG_TYPES)} (project.json SimpleConfigType)")
            continue
        if _is_project_key(name, key):
            if typed and type_name == "array" and decl.get("items") is None:
                errors.append(f"The configuration key '{key}' declares an array but does not specify the underlying type via the 'items' attribute")
            elif typed and decl.get("default") is not None and not validate_config_value(type_name, decl.get("items"), decl["default"]):
                errors.append(f"The default value specified for configuration key '{key}' is not of the expected type "
                              f"'{infer_full_type_name(type_name, decl.get('items'))}'")
        elif typed:
            errors.append(f"Configuration key '{key}' is not namespaced by the project and should not define a type")
        elif decl.get("default") is not None:
            errors.append(f"Configuration key '{key}' is not namespaced by the project and should not define a default value. "
                          "Did you mean to use the 'value' attribute instead of 'default'?")
        elif decl.get("value") is None:
            errors.append(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return errors


def _missing_keys_message(stack_name: str, missing: list[str]) -> str:
    """missingStackConfigurationKeysError / formatMissingKeys, word for word."""
    if len(missing) == 1:
        listed = f"'{missing[0]}'"
    else:
        missing = sorted(missing)
        listed = ", ".join(f"'{k}'" for k in missing[:-2])
        listed = (listed + ", " if listed else "") + f"'{missing[-2]}' and '{missing[-1]}'"
    noun = "value" if len(missing) == 1 else "values"
    return f"Stack '{stack_name}' is missing configuration {noun} {listed}"


def merge_project_config(stack_name: str, project: dict, stack: dict[str, StackValue]) -> tuple[dict[str, StackValue], list[tuple[str, str]]]:
    """mergeConfig(validate=true) without ESC environments: (merged config, [(key, CLI error)]).

    - a project-namespaced key with neither `default` nor `value` that the stack does not set
      is missing (one error listing every missing key, sorted);
    - otherwise an unset key takes `default` (or `value`);
    - then every explicitly typed key is checked against the merged value: `secret: true`
      needs an encrypted value, and the value must be of the declared type (a scalar reaches
      the check as a string, a mapping or list as parsed JSON). A secure value's plaintext is
      unknown offline, so only its secrecy is checked.
    """
    name = str(project.get("name") or "")
    declared = {k: (d if isinstance(d, dict) else {"value": d}) for k, d in (project.get("config") or {}).items()}
    merged = dict(stack)
    missing: list[str] = []
    for key in sorted(declared):
        decl = declared[key]
        full = _full_key(name, key)
        has_default, has_value = decl.get("default") is not None, decl.get("value") is not None
        if full in merged:
            continue
        if not has_value and not has_default and full.split(":", 1)[0] == name:
            missing.append(key)
            continue
        if has_value or has_default:
            merged[full] = default_value(decl["default"] if has_default else decl["value"])
    errors: list[tuple[str, str]] = []
    if missing:
        # One error per key, each carrying the CLI's one combined message.
        message = _missing_keys_message(stack_name, list(missing))
        errors += [(key, f"required key is missing (Pulumi.yaml declares it without a default); `pulumi up`: {message}")
                   for key in sorted(missing)]
        return merged, errors
    for key in sorted(declared):
        decl = declared[key]
        if decl.get("type") is None:
            continue
        value = merged.get(_full_key(name, key))
        if value is None:
            continue
        if decl.get("secret") and not value.secure:
            errors.append((key, f"Stack '{stack_name}' with configuration key '{key}' must be encrypted as it's secret"))
            continue
        if value.secure:
            continue
        content: Any = value.text
        if value.object:
            content = json.loads(value.text)
        if not validate_config_value(decl["type"], decl.get("items"), content):
            errors.append((key, f"Stack '{stack_name}' with configuration key '{key}' must be of type "
                                f"'{infer_full_type_name(decl['type'], decl.get('items'))}'"))
    return merged, errors
