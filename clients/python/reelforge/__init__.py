"""reelforge's Python client: `Client` (upload with progress, watch a job, search, make and
download a highlight), and the generated messages and stubs in `reelforge.v1`."""
from reelforge.client import Client, Error

__all__ = ["Client", "Error"]
