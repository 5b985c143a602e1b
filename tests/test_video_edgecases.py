"""Reader edge cases on clips generated here with PyAV (64x48, a few frames): rotation,
variable frame rate, odd sizes, 10-bit, zero frames, not-a-video, unsupported codec,
image folders. `make_clip` is reused by the writer tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidmatte.matting.io.video import open_video
from vidmatte.models.errors import InputError

W, H = 64, 48


def pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame i: dark grey with a white 8-px column at x = 4*i and a white top-left block,
    so index and orientation can both be read back after lossy coding."""
    img = np.full((h, w, 3), 40, np.uint8)
    img[:, (4 * i) % (w - 8) : (4 * i) % (w - 8) + 8] = 230
    img[:10, :12] = (250, 30, 30)
    return img


def column_of(rgb: np.ndarray) -> int:
    """Read back the column position written by `pattern` (rows below the block)."""
    row = rgb[rgb.shape[0] - 4, :, 1].astype(int)
    return int(np.argmax(np.convolve(row, np.ones(8), "valid")))


def make_clip(
    path: Path,
    n: int = 10,
    *,
    size: tuple[int, int] = (W, H),
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    rotation: int | None = None,
    audio_s: float | None = None,
    options: dict | None = None,
) -> Path:
    """Write a small test clip. `pts` in 1/fps units (default 0..n-1); `rotation` sets the
    display matrix (counter-clockwise degrees, FFmpeg's convention); `audio_s` adds an AAC
    sine track of that length."""
    w, h = size
    tb = Fraction(1, fps)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps, options=options or {})
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.codec_context.time_base = tb
        if rotation is not None:
            s.set_display_rotation(rotation)
        a = None
        if audio_s:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
            f = f.reformat(format=pix_fmt)
            f.pts = pts[i] if pts is not None else i
            f.time_base = tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            total = int(audio_s * 48000)
            t = np.arange(total) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = wave[start : start + 1024]
                af = av.AudioFrame.from_ndarray(
                    np.stack([chunk, chunk]), format="fltp", layout="stereo"
                )
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def test_synthetic_clip_counts_timestamps_and_content(tmp_path):
    clip = make_clip(tmp_path / "cfr.mp4", 10)
    with open_video(clip) as r:
        info = r.info
        assert (info.width, info.height, info.frame_count) == (W, H, 10)
        assert info.fps == pytest.approx(10.0)
        assert info.rotation == 0 and not info.has_audio and not info.is_image_sequence
        frames = list(r)
    assert [f.index for f in frames] == list(range(10))
    assert [f.pts for f in frames] == pytest.approx([i / 10 for i in range(10)])
    for f in frames:
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (H, W, 3) and f.rgb.flags.c_contiguous
        assert column_of(f.rgb) == (4 * f.index) % (W - 8)


@pytest.mark.parametrize(
    ("ccw", "cw", "block"),
    [(-90, 90, "top-right"), (90, 270, "bottom-left"), (180, 180, "bottom-right")],
)
def test_rotation_metadata_gives_upright_frames(tmp_path, ccw, cw, block):
    clip = make_clip(tmp_path / "rot.mp4", 3, rotation=ccw)
    with open_video(clip) as r:
        info = r.info
        rgb = r.read(1).rgb
    assert info.rotation == cw
    assert (info.width, info.height) == ((H, W) if cw in (90, 270) else (W, H))
    assert rgb.shape == (info.height, info.width, 3) and rgb.flags.c_contiguous
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 100)
    ys, xs = np.nonzero(red)
    top = ys.mean() < info.height / 2
    left = xs.mean() < info.width / 2
    assert block == f"{'top' if top else 'bottom'}-{'left' if left else 'right'}"


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_keeps_timestamps_and_seeks(tmp_path, ext):
    ticks = [0, 1, 2, 5, 6, 7, 11, 12, 20, 21]  # in 1/30 s
    clip = make_clip(tmp_path / f"vfr.{ext}", len(ticks), fps=30, pts=ticks)
    with open_video(clip) as r:
        assert r.info.frame_count == len(ticks)
        frames = list(r)
        assert [f.pts for f in frames] == pytest.approx([t / 30 for t in ticks], abs=1e-3)
        for k in (8, 3, 9, 0, 4):
            f = r.read(k)
            assert f.index == k and f.pts == pytest.approx(ticks[k] / 30, abs=1e-3)
            assert column_of(f.rgb) == (4 * k) % (W - 8)


def test_odd_size(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", 4, size=(63, 47), codec="ffv1", pix_fmt="yuv444p")
    with open_video(clip) as r:
        assert (r.info.width, r.info.height, r.info.frame_count) == (63, 47, 4)
        frames = list(r)
    assert all(f.rgb.shape == (47, 63, 3) and f.rgb.flags.c_contiguous for f in frames)
    np.testing.assert_allclose(frames[2].rgb.astype(int), pattern(2, 63, 47), atol=3)


def test_ten_bit_source(tmp_path):
    clip = make_clip(tmp_path / "ten.mp4", 4, pix_fmt="yuv420p10le", options={"crf": "10"})
    with open_video(clip) as r:
        assert r.info.bit_depth == 10 and "10" in r.info.pix_fmt
        f = r.read(3)
    assert f.rgb.dtype == np.uint8
    assert column_of(f.rgb) == 12
    # flat areas keep their level through 10-bit decoding
    assert abs(int(f.rgb[30:40, 40:50].mean()) - 40) <= 3


def test_image_folder_sorted_naturally_and_single_image(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (0, 1, 2, 10):  # natural order: 2 before 10
        cv2.imwrite(str(folder / f"f{i}.png"), pattern(i)[:, :, ::-1])
    (folder / "notes.txt").write_text("ignored")
    with open_video(folder) as r:
        assert r.info.is_image_sequence and r.info.frame_count == 4
        cols = [column_of(f.rgb) for f in r]
        assert r.read(3).pts == pytest.approx(3 / r.info.fps)
    assert cols == [0, 4, 8, 40]
    with open_video(folder / "f2.png") as r:
        assert r.info.frame_count == 1 and column_of(r.read(0).rgb) == 8
    cv2.imwrite(str(folder / "f11.png"), np.zeros((10, 10, 3), np.uint8))
    with open_video(folder) as r, pytest.raises(InputError, match="differs from the first"):
        list(r)


def _one_line_input_error(path, match: str) -> str:
    with pytest.raises(InputError, match=match) as e:
        open_video(path)
    msg = str(e.value)
    assert "\n" not in msg and Path(path).name in msg
    return msg


def test_bad_inputs_raise_one_line_input_errors(tmp_path):
    _one_line_input_error(tmp_path / "missing.mp4", "no such file")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    _one_line_input_error(tmp_path / "text.mp4", "not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _one_line_input_error(tmp_path / "empty.mp4", "empty")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    _one_line_input_error(tmp_path / "broken.png", "not a readable image")
    (tmp_path / "nothing").mkdir()
    _one_line_input_error(tmp_path / "nothing", "no images")


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        c.start_encoding()
    _one_line_input_error(path, "no video frames|no video stream")


def test_unsupported_codec(tmp_path):
    clip = make_clip(tmp_path / "ok.mkv", 2, codec="ffv1", pix_fmt="yuv420p")
    data = clip.read_bytes()
    assert b"V_FFV1" in data
    bad = tmp_path / "unknown_codec.mkv"
    bad.write_bytes(data.replace(b"V_FFV1", b"V_QQQQ", 1))
    _one_line_input_error(bad, "unsupported video codec")
