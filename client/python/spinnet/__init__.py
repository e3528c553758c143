"""spinnet: a Python client of the spinnet service (gRPC API spinnet.v1).

- spinnet.client: Client (jobs, sweeps, models and their files, classify,
  stream, traces) and SpinnetError;
- spinnet.model_file: model files parsed (settings, weights as NumPy
  arrays, checksum checked) and the nominal forward pass in NumPy;
- spinnet.plots: the paper's figures from sweeps and traces (PNG, SVG and
  a JSON sidecar of the plotted numbers);
- python3 -m spinnet.study NAME: runs one of the paper's studies as sweeps
  and draws its figure.
"""
from .client import Client, ModelFile, Reset, SpinnetError, \
    Steps  # noqa: F401

__all__ = ["Client", "SpinnetError", "ModelFile", "Steps", "Reset"]
