"""YAML as the Pulumi CLI reads it (1.2 core schema, duplicate keys refused), for stack files and facts.

PyYAML implements YAML 1.1, where `yes`, `no`, `on` and `off` are booleans, `1:30` is the
number 90 and a repeated key silently keeps its last value. The Pulumi CLI parses stack files
with Go's yaml.v3 (YAML 1.2 core schema): only true/false are booleans, and a mapping with a
repeated key is an error. Reading the file any other way would let `tierscale validate` pass a
stack that `pulumi up` rejects, or read `replicas: yes` as 1.
"""

from __future__ import annotations

import re

import yaml


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping repeats a key (Pulumi refuses the file)."""


class PulumiYamlLoader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit types and no duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} appears twice (first on line {seen[key].line + 1})", key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# Replace YAML 1.1's implicit resolvers with the YAML 1.2 core schema (yaml.org/spec/1.2.2,
# section 10.3.2): null, true/false, base-10 and hex integers, floats with .inf/.nan.
PulumiYamlLoader.yaml_implicit_resolvers = {}
_CORE_SCHEMA = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
]
for _tag, _pattern, _first in _CORE_SCHEMA:
    PulumiYamlLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: PulumiYamlLoader, node: yaml.ScalarNode) -> int:
    # YAML 1.2: "012" is twelve (1.1 read it as octal ten), "0x1f" is hex.
    text = loader.construct_scalar(node)
    return int(text, 16) if text.startswith("0x") else int(text, 10)


PulumiYamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load(text: str):
    """Parse one YAML document as Pulumi would; raises yaml.YAMLError (DuplicateKeyError too)."""
    return yaml.load(text, Loader=PulumiYamlLoader)  # noqa: S506 - a SafeLoader subclass
