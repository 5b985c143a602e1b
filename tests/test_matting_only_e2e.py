"""Matting-only mode end to end on real frames: `vidmatte-cli INPUT --trimaps DIR --out OUT`.

Input: the DAVIS-2016 'lucia' frames as an image-sequence input (read in place), with the
person's ground-truth masks (binary: they get the band rule) or trimaps made from them.
No instance stage runs, so no weights or teacher are needed.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vidmatte.matting.cli import main
from vidmatte.models.trimap import masks_to_trimaps

LUCIA = "vos/davis16_lucia"
FRAMES = 3


@pytest.fixture(scope="module")
def lucia(shared_data):
    d = shared_data / LUCIA
    masks = [cv2.imread(str(d / "masks" / f"{i:05d}.png"), 0) > 127 for i in range(FRAMES)]
    return d / "frames", masks


def _write(folder, person: str, images: dict[int, np.ndarray], sub: str = "trimap"):
    out = folder / person / sub if sub else folder / person
    out.mkdir(parents=True, exist_ok=True)
    for i, img in images.items():
        cv2.imwrite(str(out / f"{i:06d}.png"), img)


def _alpha(out, i: int, person: str = "person_01") -> np.ndarray:
    return cv2.imread(str(out / person / "alpha" / f"{i:06d}.png"), 0)


def test_binary_masks_get_the_band_rule_and_match_the_person(tmp_path, lucia):
    frames, masks = lucia
    tri_dir = tmp_path / "masks"
    _write(tri_dir, "person_01", {i: m.astype(np.uint8) * 255 for i, m in enumerate(masks)})
    out = tmp_path / "out"
    code = main([str(frames), "--trimaps", str(tri_dir), "--out", str(out), "--end", str(FRAMES),
                 "--matter", "fast", "--save-trimaps", "--quiet"])  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["instances"] == "trimap-folder"
    assert [t["id"] for t in manifest["tracks"]] == [1]
    assert manifest["tracks"][0]["frames"] == FRAMES
    for i, m in enumerate(masks):
        saved = cv2.imread(str(out / "person_01" / "trimap" / f"{i:06d}.png"), 0)
        np.testing.assert_array_equal(saved, masks_to_trimaps(m[None])[0])  # the band rule
        a = _alpha(out, i)
        assert np.all(a[saved == 0] == 0) and np.all(a[saved == 255] == 255)
        iou = ((a > 127) & m).sum() / ((a > 127) | m).sum()
        # the alpha follows the person's outline better than either side of the band does
        grown = ((saved > 0) & m).sum() / ((saved > 0) | m).sum()
        shrunk = ((saved == 255) & m).sum() / ((saved == 255) | m).sum()
        assert iou > 0.88 and iou > max(grown, shrunk) + 0.02, (iou, grown, shrunk)


def test_saved_trimaps_round_trip_to_identical_alpha(tmp_path, lucia):
    """Trimaps a run saved (a vidmatte export), matted again, give byte-identical alpha."""
    frames, masks = lucia
    tri_dir = tmp_path / "masks"
    _write(tri_dir, "person_01", {i: m.astype(np.uint8) * 255 for i, m in enumerate(masks)})
    first, second = tmp_path / "first", tmp_path / "second"
    args = ["--end", str(FRAMES), "--matter", "classical", "--quiet"]
    assert main([str(frames), "--trimaps", str(tri_dir), "--out", str(first),
                 "--save-trimaps", *args]) == 0  # fmt: skip
    assert main([str(frames), "--trimaps", str(first), "--out", str(second), *args]) == 0
    for i in range(FRAMES):
        assert (first / "person_01" / "alpha" / f"{i:06d}.png").read_bytes() == (
            second / "person_01" / "alpha" / f"{i:06d}.png"
        ).read_bytes()


def test_two_people_ids_from_folders_persons_filter_and_missing_frames(tmp_path, lucia):
    frames, masks = lucia
    h, w = masks[0].shape
    tri = masks_to_trimaps(np.stack(masks))
    tri_dir = tmp_path / "tri"
    _write(tri_dir, "person_03", {i: tri[i] for i in range(FRAMES)})
    left = np.zeros((h, w), np.uint8)
    left[100:300, 20:120] = 255  # a second "person": a solid block, frame 1 only
    _write(tri_dir, "person_07", {1: left}, sub="")
    out = tmp_path / "out"
    assert main([str(frames), "--trimaps", str(tri_dir), "--out", str(out), "--end",
                 str(FRAMES), "--matter", "fast", "--quiet"]) == 0  # fmt: skip
    tracks = {t["id"]: t for t in json.loads((out / "manifest.json").read_text())["tracks"]}
    assert set(tracks) == {3, 7}
    assert (tracks[7]["first"], tracks[7]["last"]) == (1, 1)
    # a trimap given as 0/128/255 is used as it is
    a = _alpha(out, 0, "person_03")
    assert np.all(a[tri[0] == 0] == 0) and np.all(a[tri[0] == 255] == 255)
    only = tmp_path / "only"
    assert main([str(frames), "--trimaps", str(tri_dir), "--out", str(only), "--end",
                 str(FRAMES), "--persons", "7", "--quiet"]) == 0  # fmt: skip
    assert [t["id"] for t in json.loads((only / "manifest.json").read_text())["tracks"]] == [7]


def test_bad_trimap_inputs_exit_codes(tmp_path, lucia, capsys):
    frames, masks = lucia
    out = tmp_path / "out"
    assert main([str(frames), "--trimaps", str(tmp_path / "nope"), "--out", str(out)]) == 3
    empty = tmp_path / "empty"
    (empty / "person_01" / "trimap").mkdir(parents=True)
    assert main([str(frames), "--trimaps", str(empty), "--out", str(out)]) == 3
    wrong = tmp_path / "wrong"
    _write(wrong, "person_01", {0: np.zeros((50, 300), np.uint8)})
    assert main([str(frames), "--trimaps", str(wrong), "--out", str(out), "--end", "1"]) == 3
    other = frames.parent / "masks"  # a second input: --trimaps are for one video
    assert main([str(frames), str(other), "--trimaps", str(wrong), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such folder" in err and "does not fit" in err
