"""The "teacher masks + dilate/erode trimaps + classical matting" baseline on real data,
run through the shipped Pipeline."""

from __future__ import annotations

import pytest

from vidmatte.matting.pipeline import Pipeline, PipelineConfig
from vidmatte.training.baseline import evaluate_matting, evaluate_vos


@pytest.fixture(scope="module")
def pipe(shared_weights):
    cfg = PipelineConfig(source="teacher", teacher_dir=str(shared_weights), matter="classical")
    return Pipeline(cfg)


def test_baseline_on_davis(shared_data, pipe):
    rows = evaluate_vos(shared_data / "vos" / "davis16_lucia", pipe, 3, "dis")
    assert [r["method"] for r in rows] == ["teacher masks", "teacher + classical matting"]
    for r in rows:
        assert r["frames"] == 3
        assert 0.7 < r["J"] <= 1.0 and 0.7 < r["F"] <= 1.0
        assert 80.0 < r["TC"] <= 100.0


def test_baseline_on_matting(shared_data, pipe):
    rows = evaluate_matting(shared_data / "matting", pipe)
    assert [r["data"] for r in rows] == ["c1k_spring-289527_1920_15"]  # only one has GT alpha
    assert rows[0]["MAD"] > 0 and rows[0]["Grad"] > 0
