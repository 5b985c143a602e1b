"""`--source auto` resolution order (matting/sources.py), both settings of the switch that
issue 18's validation decides: the shipped student behind or ahead of a configured teacher.
Real loads: the shipped assets/ trimap weights and the teacher files in ../shared/weights."""

from __future__ import annotations

import pytest
import torch

from vidmatte.matting import sources
from vidmatte.matting.sources import resolve_source
from vidmatte.models.errors import WeightsError

CPU = torch.device("cpu")


@pytest.fixture
def clean_env(monkeypatch):
    for var in (
        "VIDMATTE_WEIGHTS",
        "VIDMATTE_TRIMAPNET_WEIGHTS",
        "VIDMATTE_INDEXNET_WEIGHTS",
        "VIDMATTE_TEACHER_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _shipped():
    from vidmatte.models.weights.resolution import find_weights

    found = find_weights("trimapnet")
    if found is None or found.source != "assets":
        pytest.skip("no shipped trimap weights in assets/")
    return found


@pytest.mark.parametrize("student_first", [False, True])
def test_explicit_choices_and_environment_weights_always_win(
    clean_env, shared_weights, student_first
):
    shipped = _shipped()
    clean_env.setattr(sources, "SHIPPED_STUDENT_FIRST", student_first)
    clean_env.setenv("VIDMATTE_TEACHER_DIR", str(shared_weights))
    assert resolve_source("auto", teacher_dir=shared_weights, device=CPU).name == "teacher"
    got = resolve_source("auto", weights=shipped.folder, device=CPU)
    assert got.name == "network" and got.info["weights_source"] == "explicit"
    clean_env.setenv("VIDMATTE_TRIMAPNET_WEIGHTS", str(shipped.folder))
    got = resolve_source("auto", device=CPU)
    assert got.name == "network" and got.info["weights_source"] == "env"


def test_configured_teacher_outranks_shipped_student_until_switched(clean_env, shared_weights):
    _shipped()
    clean_env.setenv("VIDMATTE_TEACHER_DIR", str(shared_weights))
    clean_env.setattr(sources, "SHIPPED_STUDENT_FIRST", False)
    assert resolve_source("auto", device=CPU).name == "teacher"
    clean_env.setattr(sources, "SHIPPED_STUDENT_FIRST", True)
    got = resolve_source("auto", device=CPU)
    assert got.name == "network" and got.info["weights_source"] == "assets"
    # without a teacher the shipped student runs either way
    clean_env.delenv("VIDMATTE_TEACHER_DIR")
    for first in (False, True):
        clean_env.setattr(sources, "SHIPPED_STUDENT_FIRST", first)
        assert resolve_source("auto", device=CPU).name == "network"


@pytest.mark.parametrize("student_first", [False, True])
def test_no_shipped_weights_falls_back_to_teacher_or_one_line(
    isolated_weights, shared_weights, monkeypatch, student_first
):
    monkeypatch.setattr(sources, "SHIPPED_STUDENT_FIRST", student_first)
    monkeypatch.setenv("VIDMATTE_TEACHER_DIR", str(shared_weights))
    assert resolve_source("auto", device=CPU).name == "teacher"
    monkeypatch.delenv("VIDMATTE_TEACHER_DIR")
    with pytest.raises(WeightsError, match="no trimap weights and no teacher"):
        resolve_source("auto", device=CPU)
