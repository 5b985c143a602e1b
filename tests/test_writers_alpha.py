"""Alpha writers: exact round trips for the lossless formats, stated tolerance for VP9,
timestamps, refusal to overwrite, atomic files, resume, failing writes."""

from __future__ import annotations

import dataclasses
import os
import resource
import signal

import numpy as np
import pytest
from test_video_edgecases import H, W, make_clip

from vidmatte.matting.io.alpha import (
    ALPHA_FORMATS,
    PRORES_ALPHA_TOLERANCE,
    WEBM_TOLERANCE,
    alpha_output_path,
    open_alpha_writer,
    read_alpha,
)
from vidmatte.matting.io.atomic import check_free_space, output_error
from vidmatte.matting.io.video import open_video
from vidmatte.models.errors import OutputError

N = 6


def soft_matte(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A moving soft disc: solid inside, a smooth ramp at the edge, plus a hair-like
    semi-transparent stripe (values across the whole 0..1 range)."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - w / 2 - 2 * i, yy - h / 2) / (h / 3)
    a = np.clip(1.6 - d, 0, 1)
    a[:, 5:8] = np.linspace(0, 1, h)[:, None]
    return a.astype(np.float32)


@pytest.fixture(scope="module")
def vfr_source(tmp_path_factory):
    """A variable-frame-rate clip; the writers must keep its timestamps."""
    ticks = [0, 1, 3, 4, 8, 9]
    path = make_clip(tmp_path_factory.mktemp("src") / "vfr.mkv", N, fps=30, pts=ticks)
    with open_video(path) as r:
        frames = list(r)
        return r.info, frames


def export(fmt, out, info, frames, *, person="person_01", rgb=False, **kw):
    with open_alpha_writer(fmt, out, person, info, **kw) as w:
        for f in frames:
            w.write(f.index, soft_matte(f.index), pts=f.pts, rgb=f.rgb if rgb else None)
    return w.path


@pytest.mark.parametrize("fmt", ["png", "png16", "ffv1", "prores"])
def test_lossless_alpha_round_trip(tmp_path, vfr_source, fmt):
    info, frames = vfr_source
    path = export(fmt, tmp_path, info, frames, rgb=fmt != "png")
    assert path == alpha_output_path(tmp_path, "person_01", fmt)
    got = list(read_alpha(path))
    assert len(got) == N
    maxval = {"png": 255, "png16": 65535, "ffv1": 255, "prores": 1023}[fmt]
    for g, f in zip(got, frames, strict=True):
        assert g.maxval == maxval and g.alpha.shape == (H, W)
        expected = np.rint(soft_matte(f.index) * maxval)
        tol = PRORES_ALPHA_TOLERANCE if fmt == "prores" else 0  # else exact at stored depth
        assert np.abs(g.alpha.astype(int) - expected).max() <= tol
        if g.pts is not None:
            assert g.pts == pytest.approx(f.pts, abs=1e-3)
    # uint8 input maps exactly too (a*257 at 16 bits)
    out8 = tmp_path / "u8"
    a8 = (soft_matte(0) * 255).astype(np.uint8)
    with open_alpha_writer(fmt, out8, "person_02", info) as w:
        w.write(0, a8)
    g = next(iter(read_alpha(w.path)))
    assert np.abs(np.rint(g.as_float() * 255) - a8).max() <= (1 if fmt == "prores" else 0)


def test_webm_vp9_alpha_within_tolerance_and_timestamps(tmp_path, vfr_source):
    info, frames = vfr_source
    path = export("webm", tmp_path, info, frames, rgb=True)
    assert path.suffix == ".webm"
    got = list(read_alpha(path))  # decoded with libvpx-vp9, which keeps alpha
    assert len(got) == N
    errs = []
    for g, f in zip(got, frames, strict=True):
        assert g.maxval == 255
        assert g.pts == pytest.approx(f.pts, abs=1e-3)
        errs.append(np.abs(g.alpha.astype(float) - soft_matte(f.index) * 255).ravel())
    err = np.concatenate(errs)
    assert err.mean() <= WEBM_TOLERANCE["mean"]
    assert np.percentile(err, 99.9) <= WEBM_TOLERANCE["p999"]


def test_ffv1_carries_foreground_colour_exactly(tmp_path, vfr_source):
    import av

    info, frames = vfr_source
    path = export("ffv1", tmp_path, info, frames, rgb=True)
    with av.open(str(path)) as c:
        rgba = [f.to_ndarray(format="rgba") for f in c.decode(video=0)]
    np.testing.assert_array_equal(rgba[3][..., :3], frames[3].rgb)


def test_existing_output_is_refused_unless_overwrite(tmp_path, vfr_source):
    info, frames = vfr_source
    for fmt in ("png", "ffv1"):
        path = export(fmt, tmp_path, info, frames[:2])
        with pytest.raises(OutputError, match="overwrite"):
            open_alpha_writer(fmt, tmp_path, "person_01", info)
        # overwrite: a shorter export replaces the longer one entirely
        export(fmt, tmp_path, info, frames[:1], overwrite=True)
        assert len(list(read_alpha(path))) == 1
    leftovers = [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name]
    assert leftovers == []


def test_png_resume_skips_intact_frames_and_matches_straight_export(tmp_path, vfr_source):
    info, frames = vfr_source
    straight = export("png", tmp_path / "straight", info, frames)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt), open_alpha_writer("png", out, "person_01", info) as w:
        for f in frames:
            if f.index == 4:
                raise KeyboardInterrupt  # interrupted mid-export
            w.write(f.index, soft_matte(f.index))
    folder = alpha_output_path(out, "person_01", "png")
    # a damaged frame (cut short) must not count as done
    (folder / "000003.png").write_bytes((folder / "000003.png").read_bytes()[:-20])
    with pytest.raises(OutputError, match="resume"):
        open_alpha_writer("png", out, "person_01", info)

    written = []
    with open_alpha_writer("png", out, "person_01", info, resume=True) as w:
        for f in frames:
            if w.done(f.index):
                continue
            w.write(f.index, soft_matte(f.index))
            written.append(f.index)
    assert written == [3, 4, 5]
    for i in range(N):
        name = f"{i:06d}.png"
        assert (folder / name).read_bytes() == (straight / name).read_bytes()


def test_container_resume_keeps_a_finished_file_and_abort_leaves_nothing(tmp_path, vfr_source):
    info, frames = vfr_source
    path = export("prores", tmp_path, info, frames)
    before = path.stat().st_mtime_ns, path.read_bytes()
    with open_alpha_writer("prores", tmp_path, "person_01", info, resume=True) as w:
        assert all(w.done(f.index) for f in frames)
        for f in frames:  # writing anyway is a no-op
            w.write(f.index, soft_matte(f.index))
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before

    # an interrupted container export leaves neither the final name nor a temp file
    with pytest.raises(RuntimeError), open_alpha_writer("webm", tmp_path, "p2", info) as w:
        w.write(0, soft_matte(0))
        raise RuntimeError("crash")
    assert not (tmp_path / "p2.webm").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    # ...and a different-length file under the final name is not taken as done
    short = dataclasses.replace(info, frame_count=N + 1)
    with pytest.raises(OutputError, match="incomplete"):
        open_alpha_writer("prores", tmp_path, "person_01", short, resume=True)


def test_free_space_check_and_error_mapping(tmp_path):
    with pytest.raises(OutputError, match="not enough free space"):
        check_free_space(tmp_path / "x" / "y", 1 << 60)
    check_free_space(tmp_path / "x", 1024)
    err = output_error(OSError(28, "No space left on device"), tmp_path / "f.png")
    assert isinstance(err, OutputError) and "disk full" in str(err)


@pytest.mark.parametrize("fmt", ["png", "ffv1"])
def test_failing_write_stops_with_output_error(tmp_path, vfr_source, fmt):
    """A real write failure (file size limit: EFBIG) mid-export: OutputError naming the file,
    no half file under a final name, frames written before it stay valid."""
    info, _ = vfr_source
    big = dataclasses.replace(info, width=320, height=240, frame_count=20)
    rng = np.random.default_rng(0)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = 150_000 if fmt == "ffv1" else 60_000
    written = 0
    try:
        w = open_alpha_writer(fmt, tmp_path, "person_01", big)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
        with pytest.raises(OutputError, match="person_01") as e:
            for i in range(big.frame_count):
                noise = rng.random((240, 320), dtype=np.float32)  # incompressible
                w.write(i, noise)
                written += 1
            w.close()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "\n" not in str(e.value)
    temps = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert temps == []
    if fmt == "ffv1":
        assert not (tmp_path / "person_01.mkv").exists()
    else:
        files = sorted(os.listdir(tmp_path / "person_01" / "alpha"))
        assert len(files) == written
        assert all(g.alpha.shape == (240, 320) for g in read_alpha(tmp_path / "person_01/alpha"))


def test_formats_listed():
    assert ALPHA_FORMATS == ("png", "png16", "prores", "webm", "ffv1")


@pytest.mark.parametrize("fmt", ["prores", "webm", "ffv1"])
def test_containers_are_reproducible_byte_for_byte(tmp_path, vfr_source, fmt):
    """Bitexact muxing (issue 23): no random Matroska IDs or version strings, so the same
    frames give the same file."""
    info, frames = vfr_source
    a = export(fmt, tmp_path / "a", info, frames, rgb=True)
    b = export(fmt, tmp_path / "b", info, frames, rgb=True)
    assert a.read_bytes() == b.read_bytes()
