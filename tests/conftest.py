"""Shared fixtures. `../shared` (research data and weights) is found through the one
helper in vidmatte.models.shared; tests that need it skip with a clear reason if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt tests run without a screen; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from vidmatte.models.shared import find_shared  # noqa: E402

_SHARED = find_shared()
_NO_SHARED = "../shared (research data and weights) is not beside this checkout"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if _SHARED is None:
        pytest.skip(_NO_SHARED)
    return _SHARED


@pytest.fixture(scope="session")
def shared_data(shared_dir: Path) -> Path:
    p = shared_dir / "data"
    if not p.is_dir():
        pytest.skip("../shared/data is missing")
    return p


@pytest.fixture(scope="session")
def shared_weights(shared_dir: Path) -> Path:
    p = shared_dir / "weights"
    if not p.is_dir():
        pytest.skip("../shared/weights is missing")
    return p


@pytest.fixture(scope="session")
def videos_dir(shared_data: Path) -> Path:
    return shared_data / "videos"


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    """Weights resolution with no real Hub cache, no network, no user variables and an
    empty assets dir (the weights tests build whatever they resolve)."""
    import vidmatte.assets

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("VIDMATTE_WEIGHTS", "VIDMATTE_TRIMAPNET_WEIGHTS", "VIDMATTE_INDEXNET_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(vidmatte.assets, "ASSETS_DIR", tmp_path / "assets")
