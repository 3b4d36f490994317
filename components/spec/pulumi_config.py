"""Read the `tierscale:` namespace from the Pulumi runtime, the way `pulumi up` delivers it.

The engine hands a Python program its config as strings (objects as JSON) plus the list of
secret keys; `render` sets the same two things through `pulumi.runtime.set_all_config`, so
the program has one code path for both.
"""

from __future__ import annotations

import json
from typing import Any

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
