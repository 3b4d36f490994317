"""tierscale: deploy vLLM inference at three scales from one typed stack spec.

Sub-packages: `spec` (the stack spec and its loader), `facts` (published model and GPU
facts), `planner` (sizing), `serving` (what every tier shares: vLLM arguments, metric names,
alert rules), one package per tier (`small`, `medium`, `baremetal`), `render` (the Pulumi
program under the mock runtime) and `validate` (checks on rendered artifacts).
"""
