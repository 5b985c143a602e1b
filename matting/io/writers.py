"""Export: per-person alpha mattes, foreground cut-outs and composites, in files an editor
opens with the alpha intact (DESIGN.md, output layout).

Alpha formats (`ALPHA_FORMATS`), one output per person:
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
import math
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
from vidmatte.models.errors import InputError, OutputError

if TYPE_CHECKING:
    from vidmatte.matting.io.video import Frame, VideoInfo

ALPHA_FORMATS = ("png", "png16", "prores", "webm", "ffv1")
CONTAINER_EXT = {"prores": ".mov", "webm": ".webm", "ffv1": ".mkv"}
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
_MPEG_RANGE = 1


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


def _check_shape(alpha: np.ndarray, h: int, w: int, what: str = "alpha") -> None:
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
    _check_shape(np.asarray(alpha), h, w)
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
                f"{path} already holds {len(existing)} frames (use overwrite or resume)"
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
        _check_shape(a, self.info.height, self.info.width)
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


def _tag_bt709(cc) -> None:
    for name, value in (
        ("colorspace", _BT709),
        ("color_primaries", _BT709),
        ("color_trc", _BT709),
        ("color_range", _MPEG_RANGE),
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
        dst_color_range=_MPEG_RANGE,
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


def _stream_time_base(info: VideoInfo) -> Fraction:
    tb = info.time_base
    if tb is None or tb <= 0 or tb > 1 / info.rate:
        tb = 1 / info.rate
    return Fraction(tb)


class _ContainerAlphaWriter(AlphaWriter):
    def __init__(
        self, fmt: str, path: Path, info: VideoInfo, *, overwrite: bool, resume: bool
    ) -> None:
        self.fmt, self.path, self.info = fmt, path, info
        self._spec = _SPECS[fmt]
        self._complete = False
        self._out = None
        self._tmp: Path | None = None
        if path.exists():
            if resume and container_frame_count(path) == info.frame_count:
                self._complete = True  # finished earlier: nothing to do
            elif not overwrite:
                why = "is incomplete or from another source" if resume else "exists"
                raise OutputError(f"{path} {why} (use overwrite)")
        make_dirs(path.parent)
        clean_stale_temps(path.parent)
        if not self._complete:
            check_free_space(path, _estimate_bytes(fmt, info))
        self._tb = _stream_time_base(info)
        self._last_pts: int | None = None

    def done(self, index: int) -> bool:
        return self._complete

    def _open(self) -> None:
        import av

        spec, info = self._spec, self.info
        self._tmp = temp_path(self.path)
        try:
            out = av.open(str(self._tmp), "w", format=spec.container)
        except (av.error.FFmpegError, OSError) as e:
            raise output_error(e, self.path, "creating") from None
        self._out = out
        s = out.add_stream(spec.codec, rate=info.rate, options=dict(spec.options))
        s.width, s.height, s.pix_fmt = info.width, info.height, spec.pix_fmt
        s.time_base = self._tb
        s.codec_context.time_base = self._tb
        if spec.pix_fmt.startswith("yuv"):
            _tag_bt709(s.codec_context)
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
        _check_shape(a, self.info.height, self.info.width)
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
) -> AlphaWriter:
    """Open the writer for one person's alpha in `fmt` (see ALPHA_FORMATS)."""
    path = alpha_output_path(out_dir, person, fmt)
    if fmt in ("png", "png16"):
        return _PngSequenceWriter(fmt, path, info, overwrite=overwrite, resume=resume)
    return _ContainerAlphaWriter(fmt, path, info, overwrite=overwrite, resume=resume)


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


# --------------------------------------------------------------------------------------
# Composites

_NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "green": (0, 177, 64),  # chroma-key green
    "blue": (0, 71, 187),  # chroma-key blue
    "red": (255, 0, 0),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "magenta": (255, 0, 255),
}
# Audio codecs each container takes as they are (copied without re-encoding).
_COPY_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_s16be"},
    "matroska": {"aac", "mp3", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "pcm_s16le"},
    "webm": {"opus", "vorbis"},
}
_CONTAINER_BY_EXT = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
                     ".webm": "webm"}  # fmt: skip


def parse_colour(spec: str | tuple[int, int, int]) -> tuple[int, int, int] | None:
    """'green', '#00ff00', '0,255,0' or a tuple -> (r, g, b); None if it is not a colour."""
    if isinstance(spec, tuple | list):
        if len(spec) == 3 and all(0 <= int(v) <= 255 for v in spec):
            return tuple(int(v) for v in spec)  # type: ignore[return-value]
        raise ValueError(f"colour must be three values 0..255, got {spec!r}")
    if not isinstance(spec, str):
        return None
    s = spec.strip().lower()
    if s in _NAMED_COLOURS:
        return _NAMED_COLOURS[s]
    if re.fullmatch(r"#?[0-9a-f]{6}", s):
        s = s.lstrip("#")
        return (int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16))
    if re.fullmatch(r"\d{1,3},\d{1,3},\d{1,3}", s):
        vals = tuple(int(v) for v in s.split(","))
        if all(v <= 255 for v in vals):
            return vals  # type: ignore[return-value]
    return None


def _fit_cover(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to cover w x h, centre-crop (no distortion, no bars)."""
    import cv2

    ih, iw = rgb.shape[:2]
    if (iw, ih) == (w, h):
        return rgb
    s = max(w / iw, h / ih)
    nw, nh = max(w, math.ceil(iw * s)), max(h, math.ceil(ih * s))
    r = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x, y = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(r[y : y + h, x : x + w])


class _Background:
    """A colour, an image, or a video (looped when shorter than the source)."""

    def __init__(self, spec, w: int, h: int) -> None:
        from vidmatte.matting.io.video import IMAGE_EXTS, open_video

        self.w, self.h = w, h
        self._reader = None
        self._iter = None
        colour = parse_colour(spec) if not isinstance(spec, Path) else None
        if colour is not None:
            self._still = np.empty((h, w, 3), np.uint8)
            self._still[:] = colour
            return
        path = Path(spec)
        if not path.exists():
            raise InputError(f"background {spec!r}: not a colour and no such file")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTS:
            with open_video(path) as r:
                self._still = _fit_cover(r.read(0).rgb, w, h)
            return
        self._still = None
        self._reader = open_video(path)
        self._iter = iter(self._reader)

    def next(self) -> np.ndarray:
        if self._still is not None:
            return self._still
        try:
            f = next(self._iter)
        except StopIteration:
            self._iter = self._reader.frames()
            f = next(self._iter)
        return _fit_cover(f.rgb, self.w, self.h)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def composite(rgb: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """rgb * a + bg * (1 - a) in 8-bit integer maths (alpha quantised to 8 bits)."""
    a = quantize_alpha(alpha, 255).astype(np.uint16)[..., None]
    out = rgb.astype(np.uint16) * a + bg.astype(np.uint16) * (255 - a) + 127
    return (out // 255).astype(np.uint8)


class CompositeWriter:
    """The source's people over a new background, as an ordinary video with the source's
    frame timing and its audio (copied when the container takes the codec, else
    re-encoded: AAC for mp4/mov/mkv, Opus for webm). Audio packets are interleaved as video
    is written, so memory stays bounded; all of the audio is carried, whatever its length.
    Video: H.264 (yuv420p, or yuv444p for odd sizes) in mp4/mov/mkv, VP9 in webm."""

    def __init__(
        self, path: Path, info: VideoInfo, background, *, audio_from: Path | None,
        overwrite: bool = False,
    ) -> None:  # fmt: skip
        import av

        self.path, self.info = Path(path), info
        container = _CONTAINER_BY_EXT.get(self.path.suffix.lower())
        if container is None:
            raise OutputError(
                f"{path}: composite must be .mp4, .mov, .mkv or .webm "
                f"(got {self.path.suffix or 'no extension'})"
            )
        if self.path.exists() and not overwrite:
            raise OutputError(f"{path} exists (use overwrite)")
        make_dirs(self.path.parent)
        clean_stale_temps(self.path.parent)
        check_free_space(self.path, int(0.1 * info.width * info.height * info.frame_count))
        self._bg = _Background(background, info.width, info.height)
        self._tb = _stream_time_base(info)
        self._tmp = temp_path(self.path)
        self._last_pts = None
        self._audio_in = None
        self.audio_copied = False
        try:
            self._out = av.open(str(self._tmp), "w", format=container)
        except (av.error.FFmpegError, OSError) as e:
            self._bg.close()
            raise output_error(e, self.path, "creating") from None
        try:
            self._setup_video(container)
            if audio_from is not None:
                self._setup_audio(Path(audio_from), container)
        except BaseException:
            self.abort()
            raise

    def _setup_video(self, container: str) -> None:
        info = self.info
        if container == "webm":
            codec, opts, pix = "libvpx-vp9", {"crf": "23", "b": "0", "row-mt": "1",
                                              "deadline": "realtime", "cpu-used": "8"}, "yuv420p"  # fmt: skip
        else:
            odd = info.width % 2 or info.height % 2
            codec, opts = "libx264", {"crf": "18", "preset": "fast"}
            pix = "yuv444p" if odd else "yuv420p"
        s = self._out.add_stream(codec, rate=info.rate, options=opts)
        s.width, s.height, s.pix_fmt = info.width, info.height, pix
        s.time_base = self._tb
        s.codec_context.time_base = self._tb
        _tag_bt709(s.codec_context)
        self._vs, self._pix = s, pix

    def _setup_audio(self, src: Path, container: str) -> None:
        import av

        try:
            self._audio_in = av.open(str(src), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{src}: cannot read audio ({getattr(e, 'strerror', e)})") from None
        if not self._audio_in.streams.audio:
            self._audio_in.close()
            self._audio_in = None
            return
        ain = self._audio_in.streams.audio[0]
        self._ain = ain
        name = ain.codec_context.name if ain.codec_context else ""
        self.audio_copied = name in _COPY_AUDIO.get(container, set())
        if self.audio_copied:
            self._aout = self._out.add_stream_from_template(ain)
        else:
            codec = "libopus" if container == "webm" else "aac"
            rate = ain.codec_context.sample_rate or 48000
            if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            self._aout = self._out.add_stream(codec, rate=rate)
            self._aout.layout = (
                ain.codec_context.layout.name if ain.codec_context.layout else "stereo"
            )
            self._resampler = None
        self._apackets = self._audio_in.demux(ain)
        self._audio_done = False

    def _pump_audio(self, until_s: float | None) -> None:
        """Mux source audio up to `until_s` (None: all of it)."""
        import av

        if self._audio_in is None or self._audio_done:
            return
        tb = self._ain.time_base
        while True:
            try:
                p = next(self._apackets)
            except StopIteration:
                self._audio_done = True
                break
            except av.error.FFmpegError:
                self._audio_done = True  # damaged tail: keep what was read
                break
            if p.size == 0 or (self.audio_copied and p.dts is None):
                continue
            if self.audio_copied:
                p.stream = self._aout
                self._out.mux(p)
            else:
                self._encode_audio(p)
            if until_s is not None and p.pts is not None and float(p.pts * tb) > until_s:
                break
        if self._audio_done and not self.audio_copied:
            self._encode_audio(None)

    def _encode_audio(self, packet) -> None:
        import av

        cc = self._aout.codec_context
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format=cc.format.name if cc.format else "fltp",
                layout=cc.layout.name if cc.layout else "stereo",
                rate=cc.sample_rate,
            )
        frames = self._ain.codec_context.decode(packet) if packet is not None else []
        for f in frames:
            for rf in self._resampler.resample(f):
                for op in self._aout.encode(rf):
                    self._out.mux(op)
        if packet is None:
            for rf in self._resampler.resample(None):
                for op in self._aout.encode(rf):
                    self._out.mux(op)
            for op in self._aout.encode(None):
                self._out.mux(op)
            self._resampler = False  # flushed once

    def write(self, frame: Frame, alpha: np.ndarray) -> None:
        """Composite `frame` (its people given by `alpha`, the union of chosen persons)."""
        import av

        a = np.asarray(alpha)
        _check_shape(a, self.info.height, self.info.width)
        out = composite(frame.rgb, a, self._bg.next())
        vf = av.VideoFrame.from_ndarray(out, format="rgb24")
        from av.video.reformatter import Colorspace

        vf = vf.reformat(format=self._pix, dst_colorspace=Colorspace.ITU709,
                         dst_color_range=_MPEG_RANGE)  # fmt: skip
        ts = round(Fraction(frame.pts).limit_denominator(10**9) / self._tb)
        if self._last_pts is not None and ts <= self._last_pts:
            ts = self._last_pts + 1
        self._last_pts = ts
        vf.pts, vf.time_base = ts, self._tb
        try:
            for p in self._vs.encode(vf):
                self._out.mux(p)
            self._pump_audio(frame.pts + 0.5)
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise output_error(e, self.path) from None

    def close(self) -> None:
        import av

        if self._out is None:
            return
        try:
            for p in self._vs.encode(None):
                self._out.mux(p)
            self._pump_audio(None)
            self._out.close()
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise output_error(e, self.path) from None
        self._out = None
        self._close_inputs()
        commit(self._tmp, self.path)

    def _close_inputs(self) -> None:
        self._bg.close()
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    def abort(self) -> None:
        out, self._out = getattr(self, "_out", None), None
        if out is not None:
            with contextlib.suppress(Exception):  # already failing; the temp goes anyway
                out.close()
        self._close_inputs()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> CompositeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_composite_writer(
    path: Path,
    info: VideoInfo,
    background: str | tuple[int, int, int] | Path,
    *,
    audio_from: Path | None,
    overwrite: bool = False,
) -> CompositeWriter:
    """Open a composite writer: `background` is a colour ('green', '#00b140', (r,g,b)), an
    image path or a video path (looped); `audio_from` the file whose audio is carried over
    (usually the source), or None."""
    return CompositeWriter(path, info, background, audio_from=audio_from, overwrite=overwrite)
