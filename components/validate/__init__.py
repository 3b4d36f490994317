"""Validators for rendered artifacts; each runs a real tool or schema against the files."""

from components.validate.registry import Outcome, validate_rendered

__all__ = ["Outcome", "validate_rendered"]
