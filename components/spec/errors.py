"""Spec problems: a key path and what is wrong with it, reported all at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """The stack config is invalid; `problems` lists every finding."""

    def __init__(self, problems: Sequence[Problem], source: str = "stack config"):
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [f"{self.source}: {len(self.problems)} {noun}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def format_path(parts: Iterable[object]) -> str:
    """('models', 1, 'tensorParallel') -> 'models[1].tensorParallel'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
