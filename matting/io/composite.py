"""Composites: the source's people over a colour, an image or a looping video, as an
ordinary video with the source's frame timing and its audio.
"""

from __future__ import annotations

import contextlib
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidmatte.matting.io.alpha import (
    BITEXACT_CODEC,
    BITEXACT_MUX,
    MPEG_RANGE,
    check_shape,
    quantize_alpha,
    stream_time_base,
    tag_bt709,
)
from vidmatte.matting.io.atomic import (
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


#: The one table of colour names (`--composite NAME`, the GUI's preview and export): green
#: and blue are the chroma-key shades a keyer expects, not pure RGB primaries.
NAMED_COLOURS = {
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
    s = spec.strip().lower().replace(" ", "")
    if s in NAMED_COLOURS:
        return NAMED_COLOURS[s]
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
    is written, so memory stays bounded. `audio_range` (start_s, end_s or None) keeps only
    the audio of the processed range, at its source times like the video (to the audio
    packet: ~21 ms for AAC); None carries all of it, whatever its length.
    Video: H.264 (yuv420p, or yuv444p for odd sizes) in mp4/mov/mkv, VP9 in webm."""

    def __init__(
        self, path: Path, info: VideoInfo, background, *, audio_from: Path | None,
        overwrite: bool = False, audio_range: tuple[float, float | None] | None = None,
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
            raise OutputError(f"{path} exists (pass --overwrite to replace it)")
        make_dirs(self.path.parent)
        clean_stale_temps(self.path.parent)
        check_free_space(self.path, int(0.1 * info.width * info.height * info.frame_count))
        self._bg = _Background(background, info.width, info.height)
        self._tb = stream_time_base(info)
        self._tmp = temp_path(self.path)
        self._last_pts = None
        self._audio_in = None
        self._audio_from_s, self._audio_to_s = audio_range or (None, None)
        self.audio_copied = False
        try:
            self._out = av.open(str(self._tmp), "w", format=container,
                                container_options=BITEXACT_MUX)  # fmt: skip
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
        s = self._out.add_stream(codec, rate=info.rate, options={**opts, **BITEXACT_CODEC})
        s.width, s.height, s.pix_fmt = info.width, info.height, pix
        s.time_base = self._tb
        s.codec_context.time_base = self._tb
        tag_bt709(s.codec_context)
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
            if p.pts is not None:
                t0 = float(p.pts * tb)
                t1 = t0 + float((p.duration or 0) * tb)
                if self._audio_to_s is not None and t0 >= self._audio_to_s - 1e-6:
                    self._audio_done = True  # past the processed range
                    break
                if self._audio_from_s is not None and t1 <= self._audio_from_s + 1e-6:
                    continue  # before the processed range
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
        check_shape(a, self.info.height, self.info.width)
        out = composite(frame.rgb, a, self._bg.next())
        vf = av.VideoFrame.from_ndarray(out, format="rgb24")
        from av.video.reformatter import Colorspace

        vf = vf.reformat(format=self._pix, dst_colorspace=Colorspace.ITU709,
                         dst_color_range=MPEG_RANGE)  # fmt: skip
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
    audio_range: tuple[float, float | None] | None = None,
) -> CompositeWriter:
    """Open a composite writer: `background` is a colour ('green', '#00b140', (r,g,b)), an
    image path or a video path (looped); `audio_from` the file whose audio is carried over
    (usually the source), or None; `audio_range` (start_s, end_s or None) the source times
    of the processed range, whose audio alone is kept."""
    return CompositeWriter(
        path, info, background, audio_from=audio_from, overwrite=overwrite,
        audio_range=audio_range,
    )  # fmt: skip
