"""Filesystem locations of the repository parts the code reads (stacks, templates, schemas)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO_ROOT / "stacks"
TEMPLATES_DIR = REPO_ROOT / "templates"
PROJECT_FILE = REPO_ROOT / "Pulumi.yaml"


def schemas_dir() -> Path:
    """JSON schemas for CRDs and Compose: `TIERSCALE_SCHEMAS` or `../shared/schemas`."""
    return Path(os.environ.get("TIERSCALE_SCHEMAS", REPO_ROOT.parent / "shared" / "schemas"))
