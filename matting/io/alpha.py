"""Alpha writers and readers: per-person alpha mattes and foreground cut-outs, in files an
editor opens with the alpha intact (docs/architecture.md, output layout). Composites:
matting/io/composite.py.

Alpha formats (`ALPHA_FORMATS`, the one table in matting/io/formats.py), one output per
person:
    png     out/person_01/alpha/000000.png   8-bit grey, lossless, one file per frame
    png16   out/person_01/alpha/000000.png   16-bit grey (a8 * 257 when given uint8)
    prores  out/person_01.mov    ProRes 4444, yuva444p10le, 10-bit alpha; encoded with
                                 prores_aw (3-4x faster here than prores_ks, whose alpha is
                                 exact): alpha within 1 level of 1023 (PRORES_ALPHA_TOLERANCE)
    webm    out/person_01.webm   VP9 with alpha (yuva420p), lossy (see WEBM_TOLERANCE);
                                 FFmpeg's native vp9 decoder drops alpha, read it with
                                 libvpx-vp9 (`read_alpha` does)
    ffv1    out/person_01.mkv    FFV1 lossless, bgra: 8-bit alpha exact
In the container formats the colour planes carry the source foreground when `write(...,
rgb=frame.rgb)` is given (a ready RGBA cut-out, straight alpha), else the matte itself as
grey (so the file also works as a luma matte).

Timing: containers use the source stream's time base and each frame's own pts (pass
`pts=frame.pts`; default start + index/fps), so variable-frame-rate sources line up.

Safety:
- Every file is written under a hidden temporary name and renamed into place
  (matting/io/atomic.py); final names only ever hold complete files.
- An existing output is refused (OutputError) unless overwrite=True or resume=True.
- Resume, PNG sequences: frames already on disk with a complete PNG structure (signature,
  matching IHDR, IEND at the end) report `done(i)`; the caller skips them.
- Resume, containers: a container cannot be appended to, and only a finished file ever
  carries the final name. If the final file exists and holds the source's frame count,
  every `done(i)` is True and nothing is rewritten; otherwise the container is rewritten
  from frame 0 (an interrupted attempt leaves only a temp file, removed on restart).
- Free space is checked against a per-format estimate before writing; a failed write
  (ENOSPC, EACCES, ...) stops with an OutputError naming the file, leaving no half file.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidmatte.matting.io.atomic import (
    atomic_write_bytes,
    check_free_space,
    clean_stale_temps,
    commit,
    make_dirs,
    output_error,
    temp_path,
)
from vidmatte.matting.io.formats import ALPHA_FORMATS, CONTAINER_EXT
from vidmatte.models.errors import InputError, OutputError

if TYPE_CHECKING:
    from vidmatte.matting.io.video import VideoInfo

# VP9 alpha error bounds in 8-bit levels (mean absolute error, 99.9th percentile). Measured
# on soft mattes at crf 18, realtime/cpu-used 8 (4x faster than "good" at 720p for a
# similar alpha error): 64x48 test mattes mean 0.4, p99.9 5; a 720p matte mean 0.18, p99.9 1.9.
WEBM_TOLERANCE = {"mean": 1.0, "p999": 12}
PRORES_ALPHA_TOLERANCE = 1  # max error in 10-bit levels
# Rough output size per pixel per frame, for the free-space check (bytes).
_BYTES_PER_PIXEL = {"png": 0.15, "png16": 0.5, "prores": 1.2, "webm": 0.05, "ffv1": 0.6}
_FRAME_RE = re.compile(r"^(\d{6,})\.png$")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_BT709 = 1  # AVCOL_SPC_BT709 / AVCOL_PRI_BT709 / AVCOL_TRC_BT709
MPEG_RANGE = 1
# Reproducible containers: without these FFmpeg writes random Matroska/WebM UIDs and its
# version string, so two runs (or a run and its --resume) differ byte for byte although
# every decoded frame is the same. With them, the same input, settings, FFmpeg build and
# thread count give the same bytes (README, Output layout, says what is guaranteed).
BITEXACT_MUX = {"fflags": "+bitexact"}
BITEXACT_CODEC = {"flags": "+bitexact"}


# --------------------------------------------------------------------------------------
# Small helpers


def alpha_output_path(out_dir: Path, person: str, fmt: str) -> Path:
    """Where a person's alpha goes: a folder of PNGs or one container file."""
    _check_format(fmt)
    out_dir = Path(out_dir)
    if fmt in ("png", "png16"):
        return out_dir / person / "alpha"
    return out_dir / f"{person}{CONTAINER_EXT[fmt]}"


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


def _check_format(fmt: str) -> None:
    if fmt not in ALPHA_FORMATS:
        from vidmatte.models.errors import UsageError

        raise UsageError(f"unknown alpha format {fmt!r} (choose from {', '.join(ALPHA_FORMATS)})")


def quantize_alpha(alpha: np.ndarray, maxval: int) -> np.ndarray:
    """Alpha (float in [0,1], uint8 or uint16) as integers 0..maxval (uint8 or uint16).
    uint8 input maps exactly: to 16 bits as a*257, to 10 bits as round(a*1023/255)."""
    a = np.asarray(alpha)
    dtype = np.uint8 if maxval <= 255 else np.uint16
    if a.dtype == np.uint8:
        if maxval == 255:
            return np.ascontiguousarray(a)
        if maxval == 65535:
            return a.astype(np.uint16) * 257
        return ((a.astype(np.uint32) * maxval + 127) // 255).astype(dtype)
    if a.dtype == np.uint16:
        if maxval == 65535:
            return np.ascontiguousarray(a)
        return ((a.astype(np.uint64) * maxval + 32767) // 65535).astype(dtype)
    if a.dtype == bool:
        return a.astype(dtype) * maxval
    f = np.clip(np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0), 0.0, 1.0)
    return np.rint(f * maxval).astype(dtype)


def check_shape(alpha: np.ndarray, h: int, w: int, what: str = "alpha") -> None:
    if alpha.ndim != 2 or alpha.shape != (h, w):
        raise ValueError(f"{what} must be {h}x{w} (HxW), got {tuple(alpha.shape)}")


def _encode_png(img: np.ndarray, level: int = 1) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:  # pragma: no cover - cv2 fails only on bad shapes/dtypes
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def png_intact(path: Path, width: int | None = None, height: int | None = None) -> bool:
    """Cheap structural check: PNG signature, IHDR size, IEND chunk at the very end."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if len(head) < 24 or head[:8] != _PNG_SIG or head[12:16] != b"IHDR":
                return False
            f.seek(-12, 2)
            tail = f.read(12)
    except OSError:
        return False
    if tail != _PNG_IEND:
        return False
    w = int.from_bytes(head[16:20], "big")
    h = int.from_bytes(head[20:24], "big")
    return (width is None or w == width) and (height is None or h == height)


def write_rgba_png(
    path: str | Path,
    rgb: np.ndarray,
    alpha: np.ndarray,
    premultiplied: bool = False,
    *,
    bits: int = 8,
) -> None:
    """Write a foreground cut-out as an RGBA PNG, atomically. Straight alpha by default;
    `premultiplied=True` stores colour * alpha (what some compositors expect). `bits=16`
    writes 16-bit channels."""
    h, w = rgb.shape[:2]
    check_shape(np.asarray(alpha), h, w)
    maxval = 65535 if bits == 16 else 255
    a = quantize_alpha(alpha, maxval)
    c = quantize_alpha(rgb, maxval) if rgb.dtype != np.uint8 or bits == 16 else rgb
    c = c.astype(np.uint32 if bits == 16 else np.uint16)
    if premultiplied:
        c = (c * a[..., None] + maxval // 2) // maxval
    dtype = np.uint16 if bits == 16 else np.uint8
    bgra = np.dstack([c[..., 2], c[..., 1], c[..., 0], a]).astype(dtype)
    atomic_write_bytes(path, _encode_png(bgra))


def write_trimap_png(path: str | Path, trimap_uint8: np.ndarray) -> None:
    """Write a trimap (uint8 HxW, values 0/128/255) as a grey PNG, atomically."""
    t = np.asarray(trimap_uint8)
    if t.ndim != 2 or t.dtype != np.uint8:
        raise ValueError(f"trimap must be uint8 HxW, got {t.dtype} {tuple(t.shape)}")
    atomic_write_bytes(path, _encode_png(np.ascontiguousarray(t)))


def _estimate_bytes(fmt: str, info: VideoInfo) -> int:
    return int(_BYTES_PER_PIXEL[fmt] * info.width * info.height * max(info.frame_count, 1))


# --------------------------------------------------------------------------------------
# Alpha writers


class AlphaWriter(abc.ABC):
    """Writes one person's alpha, frame by frame. Context manager: a clean exit finalises
    (`close`), an exception leaves resumable state (`abort`)."""

    path: Path
    fmt: str

    def done(self, index: int) -> bool:
        """Frame `index` is already written and intact (resume)."""
        return False

    @abc.abstractmethod
    def write(
        self,
        index: int,
        alpha: np.ndarray,
        *,
        pts: float | None = None,
        rgb: np.ndarray | None = None,
    ) -> None:
        """Write frame `index`. alpha: float32 in [0,1], uint8 or uint16, HxW. Containers
        also take `pts` (seconds; default start + index/fps) and `rgb` (source frame, to
        carry the foreground colour)."""

    def close(self) -> None:  # noqa: B027 - default hook: nothing to finalise
        pass

    def abort(self) -> None:  # noqa: B027 - default hook: nothing to clean up
        pass

    def __enter__(self) -> AlphaWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _PngSequenceWriter(AlphaWriter):
    def __init__(
        self, fmt: str, path: Path, info: VideoInfo, *, overwrite: bool, resume: bool
    ) -> None:
        self.fmt, self.path, self.info = fmt, path, info
        self._maxval = 65535 if fmt == "png16" else 255
        self._overwrite, self._resume = overwrite, resume
        self._written: set[int] = set()
        existing = self._existing()
        if existing and not (overwrite or resume):
            raise OutputError(
                f"{path} already holds {len(existing)} frames (pass --overwrite or --resume)"
            )
        make_dirs(path)
        clean_stale_temps(path)
        todo = max(info.frame_count - (len(existing) if resume else 0), 1)
        check_free_space(path, _BYTES_PER_PIXEL[fmt] * info.width * info.height * todo)

    def _existing(self) -> dict[int, Path]:
        if not self.path.is_dir():
            return {}
        out = {}
        for entry in self.path.iterdir():
            m = _FRAME_RE.match(entry.name)
            if m:
                out[int(m.group(1))] = entry
        return out

    def frame_path(self, index: int) -> Path:
        return self.path / frame_name(index)

    def done(self, index: int) -> bool:
        if not self._resume:
            return False
        ok = png_intact(self.frame_path(index), self.info.width, self.info.height)
        if ok:
            self._written.add(index)
        return ok

    def write(self, index, alpha, *, pts=None, rgb=None) -> None:
        a = np.asarray(alpha)
        check_shape(a, self.info.height, self.info.width)
        data = _encode_png(quantize_alpha(a, self._maxval))
        atomic_write_bytes(self.frame_path(index), data)
        self._written.add(index)

    def close(self) -> None:
        if self._overwrite and not self._resume:
            # Frames of an earlier, longer export would otherwise linger beside ours.
            for i, p in self._existing().items():
                if i not in self._written:
                    p.unlink(missing_ok=True)
        clean_stale_temps(self.path)

    def abort(self) -> None:
        clean_stale_temps(self.path)


def _fill_plane(plane, arr: np.ndarray) -> None:
    """Copy a HxW array into a frame plane (which may have padded rows)."""
    item = arr.dtype.itemsize
    buf = np.frombuffer(plane, dtype=arr.dtype).reshape(-1, plane.line_size // item)
    buf[: plane.height, : plane.width] = arr


def _plane_array(plane, dtype) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    buf = np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // item)
    return buf[: plane.height, : plane.width]


def tag_bt709(cc) -> None:
    for name, value in (
        ("colorspace", _BT709),
        ("color_primaries", _BT709),
        ("color_trc", _BT709),
        ("color_range", MPEG_RANGE),
    ):
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            setattr(cc, name, value)


def _yuv_planes(rgb: np.ndarray, fmt: str) -> list[np.ndarray]:
    """RGB uint8 -> BT.709 limited-range planes in `fmt` (swscale does the maths)."""
    import av
    from av.video.reformatter import Colorspace

    src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    out = src.reformat(
        format=fmt, src_colorspace=Colorspace.ITU709, dst_colorspace=Colorspace.ITU709,
        dst_color_range=MPEG_RANGE,
    )  # fmt: skip
    dtype = np.uint16 if "10" in fmt else np.uint8
    return [_plane_array(p, dtype).copy() for p in out.planes[:3]]


@dataclass
class _Spec:
    container: str
    codec: str
    pix_fmt: str
    options: dict
    maxval: int


_SPECS = {
    "prores": _Spec(
        "mov", "prores_aw", "yuva444p10le", {"profile": "4", "vendor": "apl0"}, 1023,
    ),
    "webm": _Spec(
        "webm", "libvpx-vp9", "yuva420p",
        {"crf": "18", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}, 255,
    ),
    "ffv1": _Spec("matroska", "ffv1", "bgra", {"level": "3", "slices": "4"}, 255),
}  # fmt: skip


def stream_time_base(info: VideoInfo) -> Fraction:
    tb = info.time_base
    if tb is None or tb <= 0 or tb > 1 / info.rate:
        tb = 1 / info.rate
    return Fraction(tb)


class _ContainerAlphaWriter(AlphaWriter):
    def __init__(
        self,
        fmt: str,
        path: Path,
        info: VideoInfo,
        *,
        overwrite: bool,
        resume: bool,
        frames: int | None = None,
    ) -> None:
        self.fmt, self.path, self.info = fmt, path, info
        self._spec = _SPECS[fmt]
        self._complete = False
        self._out = None
        self._tmp: Path | None = None
        expected = info.frame_count if frames is None else frames
        if path.exists():
            if resume and container_frame_count(path) == expected:
                self._complete = True  # finished earlier: nothing to do
            elif not overwrite:
                why = "is incomplete or from another source" if resume else "exists"
                raise OutputError(f"{path} {why} (pass --overwrite to replace it)")
        make_dirs(path.parent)
        clean_stale_temps(path.parent)
        if not self._complete:
            check_free_space(path, _estimate_bytes(fmt, info))
        self._tb = stream_time_base(info)
        self._last_pts: int | None = None

    def done(self, index: int) -> bool:
        return self._complete

    def _open(self) -> None:
        import av

        spec, info = self._spec, self.info
        self._tmp = temp_path(self.path)
        try:
            out = av.open(
                str(self._tmp), "w", format=spec.container, container_options=BITEXACT_MUX
            )
        except (av.error.FFmpegError, OSError) as e:
            raise output_error(e, self.path, "creating") from None
        self._out = out
        s = out.add_stream(spec.codec, rate=info.rate, options={**spec.options, **BITEXACT_CODEC})
        s.width, s.height, s.pix_fmt = info.width, info.height, spec.pix_fmt
        s.time_base = self._tb
        s.codec_context.time_base = self._tb
        if spec.pix_fmt.startswith("yuv"):
            tag_bt709(s.codec_context)
        if self.fmt == "webm":
            s.metadata["alpha_mode"] = "1"
            s.codec_context.thread_type = "AUTO"  # libvpx row threads: ~30% faster
        self._stream = s

    def _make_frame(self, a: np.ndarray, rgb: np.ndarray | None):
        import av

        spec, info = self._spec, self.info
        h, w = info.height, info.width
        if spec.pix_fmt == "bgra":
            if rgb is None:
                bgra = np.dstack([a, a, a, a])
            else:
                bgra = np.dstack([rgb[..., 2], rgb[..., 1], rgb[..., 0], a])
            return av.VideoFrame.from_ndarray(bgra, format="bgra")
        frame = av.VideoFrame(w, h, spec.pix_fmt)
        if rgb is not None:
            planes = _yuv_planes(rgb, spec.pix_fmt[:3] + spec.pix_fmt[4:])  # yuva -> yuv
        elif spec.maxval == 1023:  # luma matte, 10-bit limited range
            y = (64 + (a.astype(np.uint32) * 876 + 511) // 1023).astype(np.uint16)
            planes = [y, None, None]
        else:
            y = (16 + (a.astype(np.uint16) * 219 + 127) // 255).astype(np.uint8)
            planes = [y, None, None]
        for i, plane in enumerate(frame.planes):
            if i == 3:
                _fill_plane(plane, a)
            elif planes[i] is not None:
                _fill_plane(plane, planes[i])
            else:
                neutral = 512 if spec.maxval == 1023 else 128
                dt = np.uint16 if spec.maxval == 1023 else np.uint8
                _fill_plane(plane, np.full((plane.height, plane.width), neutral, dt))
        return frame

    def write(self, index, alpha, *, pts=None, rgb=None) -> None:
        if self._complete:
            return
        import av

        a = np.asarray(alpha)
        check_shape(a, self.info.height, self.info.width)
        if rgb is not None and rgb.shape[:2] != a.shape:
            raise ValueError(f"rgb must be {a.shape[0]}x{a.shape[1]}x3")
        if self._out is None:
            self._open()
        q = quantize_alpha(a, self._spec.maxval)
        frame = self._make_frame(q, rgb)
        t = self.info.start_s + index / self.info.fps if pts is None else pts
        ts = round(Fraction(t).limit_denominator(10**9) / self._tb)
        if self._last_pts is not None and ts <= self._last_pts:
            ts = self._last_pts + 1  # keep timestamps strictly increasing
        self._last_pts = ts
        frame.pts, frame.time_base = ts, self._tb
        try:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise output_error(e, self.path) from None

    def close(self) -> None:
        if self._complete or self._out is None:
            if not self._complete and not self.path.exists():
                raise OutputError(f"{self.path}: no frames were written")
            return
        import av

        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise output_error(e, self.path) from None
        self._out = None
        commit(self._tmp, self.path)

    def abort(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(Exception):  # already failing; the temp goes anyway
                out.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


def open_alpha_writer(
    fmt: str,
    out_dir: Path,
    person: str,
    info: VideoInfo,
    *,
    overwrite: bool = False,
    resume: bool = False,
    frames: int | None = None,
) -> AlphaWriter:
    """Open the writer for one person's alpha in `fmt` (see ALPHA_FORMATS). `frames`: how
    many frames a container spans (the processed range; default the source's count), so a
    resumed export knows a finished container when it sees one."""
    path = alpha_output_path(out_dir, person, fmt)
    if fmt in ("png", "png16"):
        return _PngSequenceWriter(fmt, path, info, overwrite=overwrite, resume=resume)
    return _ContainerAlphaWriter(fmt, path, info, overwrite=overwrite, resume=resume, frames=frames)


# --------------------------------------------------------------------------------------
# Reading alpha back (tests, evaluation, resume checks)


@dataclass
class AlphaFrame:
    index: int
    pts: float | None
    alpha: np.ndarray  # integers 0..maxval as stored
    maxval: int

    def as_float(self) -> np.ndarray:
        return self.alpha.astype(np.float32) / self.maxval


def container_frame_count(path: Path) -> int:
    """Frames in a finished container (0 if unreadable)."""
    import av

    try:
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            if vs.frames:
                return int(vs.frames)
            return sum(1 for p in c.demux(vs) if p.size)
    except (av.error.FFmpegError, OSError, IndexError):
        return 0


def read_alpha(path: str | Path) -> Iterator[AlphaFrame]:
    """Read an alpha output back: a PNG folder or a .mov/.webm/.mkv written here."""
    import av

    path = Path(path)
    if path.is_dir():
        import cv2

        files = sorted(
            (int(m.group(1)), p) for p in path.iterdir() if (m := _FRAME_RE.match(p.name))
        )
        for i, p in files:
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise InputError(f"{p}: not a readable PNG")
            if img.ndim == 3:
                img = img[..., 0]
            yield AlphaFrame(i, None, img, 65535 if img.dtype == np.uint16 else 255)
        return
    try:
        c = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    with c:
        vs = c.streams.video[0]
        tb = vs.time_base
        if vs.codec_context.name == "vp9":
            # FFmpeg's native VP9 decoder ignores the alpha side channel; libvpx reads it.
            dec = av.codec.CodecContext.create("libvpx-vp9", "r")
            frames = _decode_with(dec, c.demux(vs))
        else:
            frames = c.decode(vs)
        for i, f in enumerate(frames):
            name = f.format.name
            pts = float(f.pts * tb) if f.pts is not None and tb else None
            if name in ("bgra", "rgba", "argb", "abgr"):
                arr = f.to_ndarray(format="rgba")[..., 3].copy()
                yield AlphaFrame(i, pts, arr, 255)
            elif name.startswith("yuva"):
                depth = f.format.components[3].bits
                dtype = np.uint16 if depth > 8 else np.uint8
                a = _plane_array(f.planes[3], dtype).copy()
                if depth == 12:  # ProRes decodes to 12 bits; written at 10
                    a = ((a.astype(np.uint32) * 1023 + 2047) // 4095).astype(np.uint16)
                    depth = 10
                yield AlphaFrame(i, pts, a, (1 << depth) - 1)
            else:
                raise InputError(f"{path}: video has no alpha channel ({name})")


def _decode_with(dec, packets) -> Iterator:
    for p in packets:
        if p.size == 0:
            continue
        yield from dec.decode(p)
    yield from dec.decode(None)
