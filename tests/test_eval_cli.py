"""`vidmatte-eval` end to end on real folders, plus bench.run_all's error handling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidmatte.training.eval.cli import main
from vidmatte.training.eval.data import read_sequences


def _davis_copy(shared_data, dst, n=4, shift=0):
    """A small DAVIS-layout copy (downscaled), masks optionally shifted right."""
    src = shared_data / "vos" / "davis16_lucia"
    (dst / "frames").mkdir(parents=True)
    (dst / "masks").mkdir()
    for f in sorted((src / "frames").glob("*.jpg"))[:n]:
        img = cv2.resize(cv2.imread(str(f)), (320, 180), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(dst / "frames" / f.name), img)
        m = cv2.imread(str(src / "masks" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        m = cv2.resize(m, (320, 180), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(dst / "masks" / (f.stem + ".png")), np.roll(m, shift, axis=1))
    return dst


def _vidmatte_output(gt_dir, dst, persons=2):
    """A vidmatte-style output: manifest.json + person_XX/alpha/ (6-digit names)."""
    dst.mkdir()
    (dst / "manifest.json").write_text(json.dumps({"schema_version": 1, "tracks": []}))
    for p in range(1, persons + 1):
        (dst / f"person_{p:02d}" / "alpha").mkdir(parents=True)
    for f in sorted((gt_dir / "masks").glob("*.png")):
        m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        cx = int(np.nonzero(m)[1].mean())  # split the one person down the middle
        left, right = m.copy(), m.copy()
        left[:, cx:] = 0
        right[:, :cx] = 0
        cv2.imwrite(str(dst / "person_01" / "alpha" / f"{int(f.stem):06d}.png"), left)
        if persons > 1:
            cv2.imwrite(str(dst / "person_02" / "alpha" / f"{int(f.stem):06d}.png"), right)
    return dst


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "vidmatte-eval" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "vidmatte" in capsys.readouterr().out


def test_davis_gt_vs_gt_and_shifted(shared_data, tmp_path, capsys):
    gt = _davis_copy(shared_data, tmp_path / "gt")
    bad = _davis_copy(shared_data, tmp_path / "bad", shift=12)
    out = tmp_path / "out"
    assert main([str(gt), str(gt), "--json", str(out / "r.json"), "--csv", str(out / "r.csv")]) == 0
    table = capsys.readouterr().out
    assert "J" in table and "TC" in table
    res = json.loads((out / "r.json").read_text())
    (row,) = res["rows"]
    assert row["J"] == 1.0 and row["F"] == 1.0 and 80 < row["TC"] <= 100
    assert "RGB" in row["tc_flow"]
    assert (out / "tc_per_pair.png").is_file() and cv2.imread(
        str(out / "tc_per_pair.png")
    ) is not None
    assert (out / "r.csv").read_text().splitlines()[0].startswith("pred,gt,frames,J,F,TC")
    # nothing is overwritten unasked
    assert main([str(gt), str(gt), "--json", str(out / "r.json")]) == 6
    assert (
        main(
            [str(bad), str(gt), "--json", str(out / "b.json"), "--plots", str(out)]
            + ["--overwrite"]
        )
        == 0
    )
    worse = json.loads((out / "b.json").read_text())["rows"][0]
    assert worse["J"] < 1.0 and worse["F"] < 1.0


def test_vidmatte_output_persons_and_union(shared_data, tmp_path, capsys):
    gt = _davis_copy(shared_data, tmp_path / "gt", n=3)
    pred = _vidmatte_output(gt, tmp_path / "mattes")
    assert [s.name for s in read_sequences(pred)] == ["person_01", "person_02"]
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps({"latency_ms": [30.0, 32.0, 31.0]}))
    r = tmp_path / "r.json"
    assert main([str(pred), str(gt), "--json", str(r), "--timings", str(timings)]) == 0
    rows = {row["pred"]: row for row in json.loads(r.read_text())["rows"]}
    assert set(rows) == {"person_01", "person_02", "union"}
    assert rows["union"]["J"] == 1.0
    assert 0.1 < rows["person_01"]["J"] < 0.9 and 0.1 < rows["person_02"]["J"] < 0.9
    assert (tmp_path / "latency_per_frame.png").is_file()
    assert "p50 31.0 ms" in capsys.readouterr().out


def test_matting_folders(shared_data, tmp_path):
    src = shared_data / "matting" / "c1k_spring-289527_1920_15"
    pred = tmp_path / "pred"
    pred.mkdir()
    (alpha,) = (src / "alpha").glob("*.png")
    a = cv2.imread(str(alpha), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(pred / alpha.name), cv2.GaussianBlur(a, (9, 9), 0))
    r = tmp_path / "r.json"
    assert main([str(pred), str(src), "--json", str(r)]) == 0
    (row,) = json.loads(r.read_text())["rows"]
    assert row["gt_kind"] == "alpha"
    assert row["MAD"] > 0 and row["Grad"] > 0 and row["Conn"] > 0
    # trimap GT (wedding: image + trimap only) against its own trimap folder
    wed = shared_data / "matting" / "c1k_wedding-dresses-1486260_1280_3"
    tri = tmp_path / "tri"
    shutil.copytree(wed / "trimap", tri)
    assert main([str(tri), str(wed), "--json", str(tmp_path / "t.json")]) == 0
    (trow,) = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert trow["iou_mean"] == 1.0


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("vidmatte-eval: error:") and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), str(tmp_path / "empty")]) == 3


def test_run_all_records_failures(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    import bench.run_all as ra

    monkeypatch.setattr(ra, "discover", lambda: ["bench_does_not_exist"])
    assert ra.main(["--quick", "--out", str(tmp_path)]) == 1
    (j,) = tmp_path.glob("*.json")
    rep = json.loads(j.read_text())
    res = rep["benchmarks"]["bench_does_not_exist"]
    assert res["status"] == "error" and "ModuleNotFoundError" in res["error"]
    assert rep["machine"]["torch"]
    (md,) = tmp_path.glob("*.md")
    assert "bench_does_not_exist (error" in md.read_text()
