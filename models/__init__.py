"""Networks and weight loading only: no video or file I/O beyond weights (docs/architecture.md).

Kept import-light (no torch at import time) so that `--help` and `--version` are instant.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("vidmatte")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
