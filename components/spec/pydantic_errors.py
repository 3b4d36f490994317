"""Turn pydantic's ValidationError into Problems with clean key paths and suggestions.

Pydantic puts the discriminator value of a tagged union into the error location
(`target.docker-host.host`); we walk the spec's types alongside the location to drop it and
to know which keys were allowed where an unknown key appears.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from components.spec.errors import Problem, format_path
from components.suggestions import suggestion


def unwrap_optional(annotation: Any) -> Any:
    """Remove Optional/Annotated wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
            else:
                return args
        else:
            return annotation


def _tag_of(model: type[BaseModel]) -> Optional[str]:
    field = model.model_fields.get("kind")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if args else None


def _field_by_alias(model: type[BaseModel], key: str):
    for name, field in model.model_fields.items():
        if key in (field.alias, name):
            return field
    return None


def walk(root: type[BaseModel], loc: tuple) -> tuple[list, Any]:
    """Follow `loc` through the type tree; return (clean path, type at the end)."""
    path: list = []
    current: Any = root
    for part in loc:
        current = unwrap_optional(current)
        if isinstance(current, list):  # tagged union: this part is the tag
            match = [m for m in current if isinstance(m, type) and _tag_of(m) == part]
            if match:
                current = match[0]
                continue
            current = None
        if isinstance(part, int):
            path.append(part)
            if typing.get_origin(current) in (list, typing.List):
                current = typing.get_args(current)[0]
            else:
                current = None
            continue
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_alias(current, str(part))
            current = field.annotation if field else None
        else:
            current = None
    return path, unwrap_optional(current)


def _allowed_keys(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def _literal_choices(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_number(text: str, value: Any) -> bool:
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def problems_from(exc: ValidationError, root: type[BaseModel], prefix: tuple = ()) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            parent_path, parent_type = walk(root, loc[:-1])
            allowed = _allowed_keys(parent_type)
            key = loc[-1]
            msg = f"unknown key{suggestion(key, allowed)}; allowed: {', '.join(allowed)}"
            if isinstance(key, str) and "_" in key and to_camel(key) in allowed:
                msg = f"unknown key (did you mean '{to_camel(key)}'?): keys are camelCase, as in every Pulumi config"
            problems.append(Problem(format_path(prefix + tuple(parent_path) + (key,)), msg))
            continue
        path, _ = walk(root, loc)
        where = format_path(prefix + tuple(path))
        if kind == "missing":
            msg = "required key is missing"
        elif kind in ("literal_error", "string_type", "string_pattern_mismatch") and _is_number(value):
            choices = _literal_choices(str(ctx.get("expected", "")))
            quoted = next((c for c in choices if _same_number(c, value)), str(value))
            msg = (f"{value!r} is a number (YAML reads it unquoted as one); write it quoted: \"{quoted}\""
                   + (f"; allowed: {', '.join(choices)}" if choices else ""))
        elif kind == "literal_error":
            choices = _literal_choices(str(ctx.get("expected", "")))
            msg = f"{value!r} is not allowed{suggestion(value, choices)}; allowed: {', '.join(choices)}"
        elif kind == "union_tag_invalid":
            tags = _literal_choices(str(ctx.get("expected_tags", "")))
            where = format_path(prefix + tuple(path) + ("kind",))
            msg = f"{ctx.get('tag')!r} is not allowed{suggestion(ctx.get('tag'), tags)}; allowed: {', '.join(tags)}"
        elif kind == "union_tag_not_found":
            where = format_path(prefix + tuple(path) + ("kind",))
            msg = "required key is missing (it selects the target variant)"
        else:
            text = err["msg"].removeprefix("Value error, ")
            shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
            msg = f"{text[0].lower()}{text[1:]}{shown}"
        problems.append(Problem(where, msg))
    return problems
