""""Did you mean …?" for every error that names an allowed value (spec, planner, CLI options)."""

from __future__ import annotations

import difflib
from typing import Iterable


def suggestion(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
