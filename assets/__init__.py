"""Shipped files: default weights, icons, the sample clip. See assets/README.md."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
SAMPLE_CLIP = ASSETS_DIR / "sample.mp4"
