"""The "teacher masks + dilate/erode trimaps + classical matting" baseline on real data."""

from __future__ import annotations

import pytest

from vidmatte.training.baseline import evaluate_matting, evaluate_vos


@pytest.fixture(scope="module")
def parts(shared_weights):
    teachers = pytest.importorskip("vidmatte.models.teachers")
    matter = pytest.importorskip("vidmatte.models.matter")
    pytest.importorskip("vidmatte.matting.trimaps")
    return teachers.load_teacher(shared_weights), matter.build_matter("classical")


def test_baseline_on_davis(shared_data, parts):
    teacher, matter = parts
    rows = evaluate_vos(shared_data / "vos" / "davis16_lucia", teacher, matter, 2, "dis")
    assert [r["method"] for r in rows] == ["teacher masks", "teacher + classical matting"]
    for r in rows:
        assert r["frames"] == 2
        assert 0.7 < r["J"] <= 1.0 and 0.7 < r["F"] <= 1.0
        assert 80.0 < r["TC"] <= 100.0


def test_baseline_on_matting(shared_data, parts):
    teacher, matter = parts
    rows = evaluate_matting(shared_data / "matting", teacher, matter)
    assert [r["data"] for r in rows] == ["c1k_spring-289527_1920_15"]  # only one has GT alpha
    assert rows[0]["MAD"] > 0 and rows[0]["Grad"] > 0
