"""Load a stack's `tierscale:` config into a ResolvedStack, or raise SpecError listing every problem.

Two phases: field-level validation (types, ranges, unknown keys) for the whole tree, then the
cross-field rules in `components.spec.rules` when the fields are sound. Nothing here touches
Pulumi resources, so a bad stack fails before anything is registered.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import ValidationError

from components.spec.errors import Problem, SpecError
from components.suggestions import suggestion
from components.spec.model import SECRET_KEYS, StackSpec
from components.spec.pydantic_errors import problems_from
from components.spec.resolved import ResolvedStack
from components.spec.rules import resolve

NAMESPACE = "tierscale"


def load_spec(
    config: dict[str, Any],
    secret_keys: Iterable[str] = (),
    source: str = "stack config",
    require_secrets: bool = True,
) -> ResolvedStack:
    """Validate `config` (keys without the `tierscale:` prefix; values parsed).

    `secret_keys` names the keys Pulumi holds as secrets. Secret values never enter the spec:
    only whether each one is present.
    """
    secret_keys = set(secret_keys)
    problems: list[Problem] = []
    if not isinstance(config, dict):
        raise SpecError([Problem("config", "must be a mapping of tierscale:<key> to values")], source)
    # An empty secret is unset (Pulumi.yaml declares optional secrets with default "").
    config = {k: v for k, v in config.items() if not (k in SECRET_KEYS and v in ("", None))}
    plain = {k: v for k, v in config.items() if k not in SECRET_KEYS}
    present_secrets = {k for k in config if k in SECRET_KEYS and k in secret_keys}
    plaintext_secrets = {k for k in config if k in SECRET_KEYS and k not in secret_keys}
    for key in sorted(k for k in plain if k in secret_keys):
        problems.append(Problem(key, f"must not be a secret (only {', '.join(SECRET_KEYS)} are)"))

    allowed = [f.alias for f in StackSpec.model_fields.values()] + list(SECRET_KEYS)
    for key in sorted(k for k in plain if k not in allowed):
        problems.append(Problem(key, f"unknown key{suggestion(key, allowed)}; allowed: {', '.join(allowed)}"))
    known = {k: v for k, v in plain.items() if k in allowed}
    try:
        spec = StackSpec.model_validate(known)
    except ValidationError as exc:
        problems += problems_from(exc, StackSpec)
        raise SpecError(sorted(set(problems), key=problems.index), source) from None
    if problems:
        raise SpecError(problems, source)
    rule_problems, resolved = resolve(spec, present_secrets, plaintext_secrets, require_secrets)
    if rule_problems:
        raise SpecError(rule_problems, source)
    return resolved
