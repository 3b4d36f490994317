"""Pulumi entry point: `pulumi up --stack <name>` runs this with the stack's config."""

import pulumi

from components.program import run
from components.spec import SpecError

try:
    run(pulumi.get_stack())
except SpecError as error:
    # RunError prints the message without a Python traceback; nothing was registered yet.
    raise pulumi.RunError(error.render()) from None
