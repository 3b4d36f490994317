"""A Pulumi stack name as a name other tools accept.

Pulumi allows stack names such as `Prod` or `prod.eu`; Compose project names and Kubernetes
object names must be lowercase DNS labels. Every tier names its objects from `stack_slug`.
"""

from __future__ import annotations

import re


def stack_slug(stack_name: str) -> str:
    """'Prod' -> 'prod', 'prod.eu' -> 'prod-eu', 'team_a/prod' -> 'team-a-prod' (<= 40 chars)."""
    slug = re.sub(r"[^a-z0-9]+", "-", stack_name.lower()).strip("-")[:40].strip("-")
    return slug or "stack"
