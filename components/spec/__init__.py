"""The stack spec: typed model, loaders (stack file, Pulumi runtime) and validation rules."""

from components.spec.errors import Problem, SpecError
from components.spec.loader import NAMESPACE, load_spec
from components.spec.model import SECRET_KEYS, StackSpec
from components.spec.resolved import ResolvedModel, ResolvedStack

__all__ = ["NAMESPACE", "Problem", "ResolvedModel", "ResolvedStack", "SECRET_KEYS", "SpecError", "StackSpec", "load_spec"]
