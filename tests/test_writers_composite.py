"""Composites (colour / image / video backgrounds) with the source audio carried over,
RGBA and trimap PNGs, and the manifest."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
from test_video_edgecases import H, W, make_clip, pattern

from vidmatte.matting.io.alpha import write_rgba_png, write_trimap_png
from vidmatte.matting.io.composite import open_composite_writer, parse_colour
from vidmatte.matting.io.manifest import SCHEMA_VERSION, read_manifest, source_entry, write_manifest
from vidmatte.matting.io.video import open_video
from vidmatte.models.errors import InputError, OutputError


def half_matte() -> np.ndarray:
    a = np.zeros((H, W), np.float32)
    a[:, : W // 2] = 1.0  # left half: person, right half: background
    return a


def stream_durations(path):
    with av.open(str(path)) as c:
        out = {}
        for s in c.streams:
            if s.type == "audio":
                aframes = list(c.decode(s))
                n = sum(f.samples for f in aframes)
                out["audio"] = (s.codec_context.name, n / s.codec_context.sample_rate)
                out["audio_start"] = float(aframes[0].pts * aframes[0].time_base)
        c.seek(0)
        vpts = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        out["video"] = vpts
    return out


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory):
    # 10 frames at 10 fps (1 s of video) and 1.5 s of AAC audio.
    return make_clip(tmp_path_factory.mktemp("a") / "talk.mp4", 10, audio_s=1.5)


@pytest.mark.parametrize(("ext", "copied"), [("mp4", True), ("mkv", True), ("webm", False)])
def test_colour_composite_keeps_timing_and_audio(tmp_path, clip_with_audio, ext, copied):
    src = open_video(clip_with_audio)
    info = src.info
    assert info.has_audio
    ref = stream_durations(clip_with_audio)
    out = tmp_path / f"comp.{ext}"
    with src, open_composite_writer(out, info, "green", audio_from=clip_with_audio) as cw:
        frames = list(src)
        for f in frames:
            cw.write(f, half_matte())
    assert cw.audio_copied is copied  # AAC is remuxed where allowed, re-encoded for WebM
    d = stream_durations(out)
    assert d["audio"][1] == pytest.approx(ref["audio"][1], abs=0.03)
    # Same frame times. Matroska may shift every stream by the AAC priming delay (its
    # timestamps cannot be negative), so audio is compared relative to video; codec
    # priming/pre-skip may move the first decoded sample by up to one AAC frame (21 ms),
    # under a video frame.
    shift = d["video"][0] - frames[0].pts
    assert d["video"] == pytest.approx([f.pts + shift for f in frames], abs=1e-3)
    assert d["audio_start"] - shift == pytest.approx(ref["audio_start"], abs=0.025)
    with open_video(out) as r:
        assert r.info.frame_count == 10
        img = r.read(4).rgb.astype(int)
    assert np.abs(img[:, : W // 2 - 4] - frames[4].rgb[:, : W // 2 - 4]).mean() < 6
    assert np.abs(img[:, W // 2 + 4 :] - np.array(parse_colour("green"))).mean() < 6


def test_image_and_video_backgrounds(tmp_path, clip_with_audio):
    bg_img = tmp_path / "bg.png"
    cv2.imwrite(str(bg_img), np.full((30, 90, 3), (200, 100, 50), np.uint8))  # BGR, other size
    bg_vid = make_clip(tmp_path / "bg.mkv", 3, size=(32, 24), codec="ffv1", pix_fmt="yuv444p")
    with open_video(clip_with_audio) as src:
        info, frames = src.info, list(src)
    for bg, name in ((bg_img, "img.mp4"), (bg_vid, "vid.mp4")):
        with open_composite_writer(tmp_path / name, info, bg, audio_from=None) as cw:
            for f in frames:
                cw.write(f, np.zeros((H, W), np.uint8))  # all background
        with av.open(str(tmp_path / name)) as c:
            assert [s.type for s in c.streams] == ["video"]
        with open_video(tmp_path / name) as r:
            out = [f.rgb.astype(int) for f in r]
        assert len(out) == 10
        if name == "img.mp4":
            assert np.abs(out[0][H // 2, W // 2] - (50, 100, 200)).max() < 8
        else:  # the 3-frame background video loops: frame 3 shows background frame 0
            assert np.abs(out[3] - out[0]).mean() < 2
            assert np.abs(out[1] - out[0]).mean() > 5


def test_composite_refuses_overwrite_and_bad_arguments(tmp_path, clip_with_audio):
    with open_video(clip_with_audio) as src:
        info, f0 = src.info, src.read(0)
    out = tmp_path / "c.mp4"
    with open_composite_writer(out, info, (0, 0, 255), audio_from=None) as cw:
        cw.write(f0, half_matte())
    with pytest.raises(OutputError, match="exists"):
        open_composite_writer(out, info, "black", audio_from=None)
    with open_composite_writer(out, info, "#ff8000", audio_from=None, overwrite=True) as cw:
        cw.write(f0, half_matte())
    with pytest.raises(OutputError, match=r"\.mp4, \.mov"):
        open_composite_writer(tmp_path / "c.gif", info, "black", audio_from=None)
    with pytest.raises(InputError, match="not a colour"):
        open_composite_writer(tmp_path / "d.mp4", info, "no-such-bg.png", audio_from=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]  # no temp files left


def test_rgba_png_straight_and_premultiplied(tmp_path):
    rgb = pattern(0)
    alpha = np.linspace(0, 1, W, dtype=np.float32)[None].repeat(H, 0)
    write_rgba_png(tmp_path / "s.png", rgb, alpha)
    write_rgba_png(tmp_path / "p.png", rgb, alpha, premultiplied=True)
    s = cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_UNCHANGED)
    p = cv2.imread(str(tmp_path / "p.png"), cv2.IMREAD_UNCHANGED)
    a8 = np.rint(alpha * 255).astype(int)
    np.testing.assert_array_equal(s[..., 3], a8)
    np.testing.assert_array_equal(s[..., 2::-1], rgb)  # BGRA on disk
    expect = (rgb.astype(int) * a8[..., None] + 127) // 255
    np.testing.assert_array_equal(p[..., 2::-1], expect)
    write_rgba_png(tmp_path / "s16.png", rgb, alpha, bits=16)
    s16 = cv2.imread(str(tmp_path / "s16.png"), cv2.IMREAD_UNCHANGED)
    assert s16.dtype == np.uint16
    np.testing.assert_array_equal(s16[..., 2::-1], rgb.astype(int) * 257)


def test_trimap_png(tmp_path):
    t = np.zeros((H, W), np.uint8)
    t[10:20] = 128
    t[20:] = 255
    write_trimap_png(tmp_path / "t.png", t)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "t.png"), cv2.IMREAD_UNCHANGED), t)
    with pytest.raises(ValueError):
        write_trimap_png(tmp_path / "bad.png", t.astype(np.float32))


def test_manifest_round_trip_and_refusals(tmp_path, clip_with_audio):
    with open_video(clip_with_audio) as r:
        info = r.info
    tracks = [{"id": 1, "first": 0, "last": 9, "frames": 10, "mean_score": np.float32(0.9)}]
    path = write_manifest(tmp_path / "out", {"source": source_entry(info), "tracks": tracks})
    assert path.name == "manifest.json"
    m = read_manifest(tmp_path / "out")
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["source"]["frame_count"] == 10 and m["source"]["path"] == str(clip_with_audio)
    assert m["tracks"][0]["mean_score"] == pytest.approx(0.9)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.json"]  # no temps

    (tmp_path / "out" / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(InputError, match="newer"):
        read_manifest(tmp_path / "out")
    with pytest.raises(InputError, match="no manifest"):
        read_manifest(tmp_path / "elsewhere")
