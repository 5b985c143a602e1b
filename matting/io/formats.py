"""The one table of alpha formats: `--format`, the GUI's export dialog and the writers.

Import-light on purpose (no numpy, no PyAV): `vidmatte-cli --help` lists the choices.
How each format is encoded, and its measured error bounds: matting/io/alpha.py.
"""

from __future__ import annotations

#: format -> what the user sees (export dialog, help); the order is the menu's
FORMAT_LABELS = {
    "png": "PNG sequence (8-bit)",
    "png16": "PNG sequence (16-bit)",
    "prores": "ProRes 4444 (.mov)",
    "webm": "WebM VP9 with alpha",
    "ffv1": "FFV1 lossless (.mkv)",
}
ALPHA_FORMATS = tuple(FORMAT_LABELS)
#: the formats written as one video file per person, and that file's extension
CONTAINER_EXT = {"prores": ".mov", "webm": ".webm", "ffv1": ".mkv"}
CONTAINER_FORMATS = tuple(CONTAINER_EXT)
