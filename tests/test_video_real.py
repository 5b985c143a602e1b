"""The reader on real clips from ../shared/data/videos: counts, timestamps, frame-accurate
seeking against sequential decoding, truncated copies."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vidmatte.matting.io.video import TruncatedInputWarning, open_video
from vidmatte.models.errors import InputError


@pytest.mark.parametrize(
    ("name", "size", "count", "fps"),
    [
        ("maggie_three_dancers.mp4", (1280, 720), 96, 25.0),
        ("liveportrait_d13_selfie_vertical.mp4", (720, 1280), 352, 30.0),
        ("romp_dance_whitebg.mp4", (1920, 1080), 300, 30000 / 1001),
        ("openpose_street_two_women.avi", (1280, 720), 205, 50.0),
    ],
)
def test_real_clip_info(videos_dir, name, size, count, fps):
    with open_video(videos_dir / name) as r:
        info = r.info
    assert (info.width, info.height) == size
    assert info.frame_count == count and info.frame_count_exact
    assert info.fps == pytest.approx(fps, rel=1e-4)
    assert info.duration_s == pytest.approx(count / fps, abs=0.1)
    assert info.codec == "h264" and info.rotation == 0


def test_full_decode_matches_count_and_timestamps(videos_dir):
    with open_video(videos_dir / "maggie_three_dancers.mp4") as r:
        pts = [f.pts for f in r]
        assert not r.warnings
    assert len(pts) == 96
    np.testing.assert_allclose(np.diff(pts), 1 / 25, atol=1e-6)


def test_seek_is_frame_accurate(videos_dir):
    with open_video(videos_dir / "sam2_bedroom_two_kids.mp4") as r:
        seq = {f.index: (f.pts, f.rgb) for f in r.frames(0, 70)}
        # backwards, forwards, across keyframes, repeated, and neighbours
        for k in (65, 3, 40, 41, 0, 69, 12, 12, 13):
            f = r.read(k)
            assert f.index == k and f.pts == pytest.approx(seq[k][0])
            np.testing.assert_array_equal(f.rgb, seq[k][1])
        rng = list(r.frames(30, 35))
        assert [f.index for f in rng] == [30, 31, 32, 33, 34]
        np.testing.assert_array_equal(rng[-1].rgb, seq[34][1])
        last = r.read(r.info.frame_count - 1)
        assert last.index == 199 and last.pts == pytest.approx(199 / 30)
        with pytest.raises(IndexError):
            r.read(200)


def test_truncated_file_delivers_frames_up_to_damage(videos_dir, tmp_path):
    # hybrik_taiji.mp4 keeps its index at the front, so a cut copy still opens.
    src = videos_dir / "hybrik_taiji.mp4"
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 8])
    with open_video(cut) as r:
        assert r.info.frame_count == 412  # the header's promise
        with pytest.warns(TruncatedInputWarning, match="truncated"):
            frames = list(r)
        assert 10 < len(frames) < 412
        assert [f.index for f in frames] == list(range(len(frames)))
        assert r.warnings and "\n" not in r.warnings[0]
        assert r.info.frame_count == len(frames)  # corrected after reading
    with open_video(src) as full:
        ref = full.read(len(frames) // 2).rgb
    np.testing.assert_array_equal(frames[len(frames) // 2].rgb, ref)


def test_truncated_file_without_index_is_an_input_error(videos_dir, tmp_path):
    # maggie_three_dancers.mp4 keeps its index (moov) at the end: a cut copy cannot open.
    cut = tmp_path / "maggie_cut.mp4"
    with open(videos_dir / "maggie_three_dancers.mp4", "rb") as f:
        cut.write_bytes(f.read(200_000))
    with pytest.raises(InputError, match="maggie_cut.mp4") as e:
        open_video(cut)
    assert "\n" not in str(e.value)


def test_copy_with_other_extension_still_reads(videos_dir, tmp_path):
    # The container is sniffed, not guessed from the name.
    dst = tmp_path / "clip.bin"
    shutil.copy(videos_dir / "maggie_three_dancers.mp4", dst)
    with open_video(dst) as r:
        assert r.info.frame_count == 96 and r.read(5).index == 5


def test_avi_with_b_frames_keeps_every_frame_in_order(shared_data):
    """AVI stores no presentation times; FFmpeg's guessed pts of a B-frame AVI come out
    shuffled (1, 2, 4, 3, ...). Every frame must still be delivered once, in decoder order,
    and a seek must land on the same picture as sequential decoding."""
    path = shared_data / "train/videos/mmaction2_ntu_woman_drinking_S001C001P001R001A001.avi"
    if not path.is_file():
        pytest.skip("train clip not in shared/")
    with open_video(path) as r:
        seq = list(r.frames())
    assert [f.index for f in seq] == list(range(103))
    with open_video(path) as r:
        for i in (77, 3, 50, 102):
            assert np.array_equal(r.read(i).rgb, seq[i].rgb), i
        assert [f.index for f in r.frames(40, 44)] == [40, 41, 42, 43]
