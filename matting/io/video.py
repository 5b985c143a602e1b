"""Video input: every source (a video file, a folder of images, one image) as a stream of
upright RGB frames with their index and presentation time.

Decisions worth knowing:
- Streaming: frames are decoded one at a time (PyAV, threaded decoder); memory stays at a
  few frames whatever the length.
- Orientation: phone clips store landscape pixels plus a display matrix (or a legacy
  `rotate` tag). Frames come out upright (np.rot90) and `VideoInfo.rotation` says how many
  degrees *clockwise* were applied (the convention of the `rotate` tag). Flips in the display
  matrix and non-square pixels are not applied.
- Frame index = position in presentation order. `pts` is the frame's own timestamp in
  seconds as stored in the file (not index/fps), so variable-frame-rate clips keep their
  timing; writers reuse it so exports line up with the source in an editor.
- Frame-accurate seek: the presentation timestamps of all packets are read once (demux
  only, no decoding) and sorted; `read(n)` seeks to the keyframe before frame n's pts and
  decodes forward to exactly that pts. Sequential reads skip the seek.
- Damaged/truncated files: packets the decoder rejects are skipped. Every decoded frame keeps
  its own index (its pts looked up in the demuxed timestamp table), so frames after a
  damaged stretch never shift onto earlier indices, a range read never yields a frame
  outside [start, end), and a range read gives exactly the frames a full read gives there.
  Frames that could not be decoded are named in one line appended to `reader.warnings`
  (and issued as a `TruncatedInputWarning`, which the CLI silences: it prints the line).
- Colour: decoded with the frame's own colour matrix/range; untagged HD (>= 720 lines) is
  taken as BT.709, untagged SD as BT.601 (what players do). 10-bit sources become 8-bit RGB.
"""

from __future__ import annotations

import abc
import bisect
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidmatte.models.errors import InputError

IMAGE_EXTS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}
)
DEFAULT_IMAGE_FPS = 25.0


class TruncatedInputWarning(UserWarning):
    """The input ended early or is damaged; frames before the damage were delivered."""


@dataclass(frozen=True)
class VideoInfo:
    """What a source is. Sizes are the display size (after rotation)."""

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int  # exact when `frame_count_exact`, else an estimate
    duration_s: float
    rotation: int  # degrees clockwise applied to get the display orientation (0/90/180/270)
    has_audio: bool
    codec: str
    pix_fmt: str
    is_image_sequence: bool
    # Extensions (defaults keep older constructors working):
    frame_count_exact: bool = True
    time_base: Fraction | None = None  # of the source video stream; pts are multiples of it
    start_s: float = 0.0  # pts of the first frame
    bit_depth: int = 8  # of the source samples (10 for 10-bit sources)

    @property
    def rate(self) -> Fraction:
        """The frame rate as an exact fraction (30000/1001 rather than 29.97...)."""
        return _rate_fraction(self.fps)


@dataclass
class Frame:
    index: int
    pts: float  # seconds
    rgb: np.ndarray  # uint8 HxWx3, display orientation, C-contiguous


def _rate_fraction(fps: float) -> Fraction:
    if fps <= 0:
        return Fraction(DEFAULT_IMAGE_FPS)
    for den in (1, 1001, 100, 1000):
        num = round(fps * den)
        if num > 0 and abs(num / den - fps) < 1e-6 * max(fps, 1):
            return Fraction(num, den)
    return Fraction(fps).limit_denominator(100000)


def open_video(path: str | Path, *, image_fps: float = DEFAULT_IMAGE_FPS) -> VideoReader:
    """Open a video file, a folder of images (sorted by name, numbers compared as numbers)
    or a single image. Raises InputError with a one-line message naming the path.
    `image_fps` is the frame rate given to image sequences (they carry none)."""
    p = Path(path).expanduser()
    if not p.exists():
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except RuntimeError:  # Python < 3.13 raises this for loops
                raise InputError(f"{p}: symlink loop") from None
            except OSError as e:
                if e.errno == 40:  # ELOOP
                    raise InputError(f"{p}: symlink loop") from None
                raise InputError(f"{p}: broken symlink (to {os.readlink(p)})") from None
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
        if not files:
            raise InputError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})")
        files.sort(key=_natural_key)
        return _ImageSequenceReader(p, files, image_fps)
    if p.suffix.lower() in IMAGE_EXTS:
        return _ImageSequenceReader(p, [p], image_fps)
    return _AVReader(p)


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class VideoReader(abc.ABC):
    """A source of frames. Context manager; `close()` frees the decoder.

    `info` describes the source; `warnings` collects one-line notes (e.g. truncation).
    Iterating yields every frame; `frames(start, end)` a range (end exclusive);
    `read(n)` one frame, exactly frame n.
    """

    info: VideoInfo
    warnings: list[str]

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    @abc.abstractmethod
    def frames(self, start: int = 0, end: int | None = None) -> Iterator[Frame]: ...

    @abc.abstractmethod
    def read(self, index: int) -> Frame: ...

    def close(self) -> None:  # noqa: B027 - a default hook: readers with no decoder keep it
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            warnings.warn(msg, TruncatedInputWarning, stacklevel=3)

    def _check_index(self, index: int) -> None:
        n = self.info.frame_count
        if index < 0 or index >= n:
            raise IndexError(f"frame {index} out of range (0..{n - 1})")


# --------------------------------------------------------------------------------------
# Images


def _read_image_rgb(path: Path) -> np.ndarray:
    """Read an image as upright RGB uint8 (EXIF orientation applied, 16-bit scaled down,
    grey expanded, alpha dropped)."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise InputError(f"{path}: file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation, 8-bit BGR
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return np.ascontiguousarray(img[:, :, ::-1])


class _ImageSequenceReader(VideoReader):
    def __init__(self, path: Path, files: list[Path], fps: float) -> None:
        self._files = files
        self.warnings = []
        first = _read_image_rgb(files[0])
        self._first = first
        h, w = first.shape[:2]
        fps = float(fps) if fps and fps > 0 else DEFAULT_IMAGE_FPS
        self.info = VideoInfo(
            path=path,
            width=w,
            height=h,
            fps=fps,
            frame_count=len(files),
            duration_s=len(files) / fps,
            rotation=0,
            has_audio=False,
            codec=files[0].suffix.lower().lstrip("."),
            pix_fmt="rgb24",
            is_image_sequence=True,
            time_base=1 / _rate_fraction(fps),
        )

    def _frame(self, i: int) -> Frame:
        rgb = self._first if i == 0 else _read_image_rgb(self._files[i])
        if rgb.shape[:2] != (self.info.height, self.info.width):
            raise InputError(
                f"{self._files[i]}: size {rgb.shape[1]}x{rgb.shape[0]} differs from the "
                f"first image ({self.info.width}x{self.info.height})"
            )
        return Frame(index=i, pts=i / self.info.fps, rgb=rgb)

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[Frame]:
        n = self.info.frame_count
        end = n if end is None else min(end, n)
        for i in range(max(start, 0), end):
            yield self._frame(i)

    def read(self, index: int) -> Frame:
        self._check_index(index)
        return self._frame(index)


# --------------------------------------------------------------------------------------
# Video files (PyAV)


def _av_message(e: BaseException) -> str:
    """FFmpeg errors carry the file name and errno; keep only the reason."""
    reason = getattr(e, "strerror", None) or str(e)
    return str(reason).splitlines()[0] if reason else type(e).__name__


class _AVReader(VideoReader):
    def __init__(self, path: Path) -> None:
        import av

        self.warnings = []
        self._path = path
        try:
            size = path.stat().st_size
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
        if size == 0:
            raise InputError(f"{path}: file is empty")
        try:
            self._c = av.open(str(path), metadata_errors="ignore")
        except av.error.FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (av.error.PermissionError, PermissionError):
            raise InputError(f"{path}: permission denied") from None
        except av.error.EOFError:
            raise InputError(f"{path}: contains no video frames (empty or truncated)") from None
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise InputError(
                f"{path}: not a video or image, or damaged beyond reading ({_av_message(e)})"
            ) from None
        try:
            self._setup()
        except BaseException:
            self._c.close()
            raise

    # -- opening ------------------------------------------------------------------------

    def _setup(self) -> None:
        c, path = self._c, self._path
        streams = [s for s in c.streams.video if not (s.disposition & 0x400)]  # attached pics
        if not streams:
            what = "is audio only" if c.streams.audio else "has no video stream (empty?)"
            raise InputError(f"{path}: {what}")
        vs = self._vs = streams[0]
        cc = vs.codec_context
        if cc is None:
            tag = vs.codec_tag if hasattr(vs, "codec_tag") else ""
            raise InputError(f"{path}: unsupported video codec {tag or '(unknown)'}".rstrip())
        cc.thread_type = "AUTO"
        self._tb = vs.time_base or Fraction(1, 90000)
        self._pts_table: list[int] | None = None
        # AVI stores no presentation times: FFmpeg guesses them from decode order, so with
        # B-frames decoded frames carry shuffled pts (1, 2, 4, 3, 6, 5, ...). Their indices
        # then come from the decoder's output order, which is the presentation order.
        self._pts_ordered = "avi" not in (self._c.format.name or "").split(",")
        self._gen: Iterator | None = None
        self._next_index = 0  # index of the next frame self._gen yields
        self._pending: list = []  # decoded frames pushed back in front of self._gen
        self._damaged = False
        self._decoded_max = -1  # highest index decoded so far
        first = self._first_frame()
        if first is None:
            if self._damaged:
                raise InputError(f"{path}: damaged, no frame could be decoded")
            raise InputError(f"{path}: contains no video frames (empty)")

        rot = _rotation_cw(first, vs)
        self._k = ((360 - rot) // 90) % 4
        w, h = first.width, first.height
        if rot in (90, 270):
            w, h = h, w

        fps = float(vs.average_rate or vs.guessed_rate or vs.base_rate or 0) or 0.0
        dur = None
        if vs.duration:
            dur = float(vs.duration * self._tb)
        elif c.duration:
            dur = c.duration / 1e6
        n = int(vs.frames or 0)
        exact = n > 0
        if not exact:
            # Matroska/WebM and friends: no count in the header, so count packets (demux only).
            table = self._build_pts_table()
            n, exact = len(table), True
            # A cut copy: the header still gives the full length, the packets stop early
            # (compared by time, not count, so variable frame rates do not trip it).
            length = _stream_length_s(vs, c)
            step = 1 / fps if fps else 0.04
            if table and length:
                first_t = float(table[0] * self._tb)
                last_t = float(table[-1] * self._tb) + step
                if length - (last_t - min(first_t, 0.0)) > 2 * step:
                    self._warn(
                        f"{path}: truncated: its header gives {length:.2f} s but the frames "
                        f"stop at {last_t:.2f} s; the {n} frames before are usable"
                    )
        if not fps:
            fps = n / dur if dur else DEFAULT_IMAGE_FPS
        if not dur:
            dur = n / fps
        fmt = first.format
        depth = max((comp.bits for comp in fmt.components), default=8)
        self.info = VideoInfo(
            path=path,
            width=w,
            height=h,
            fps=fps,
            frame_count=n,
            duration_s=dur,
            rotation=rot,
            has_audio=bool(c.streams.audio),
            codec=cc.name,
            pix_fmt=fmt.name,
            is_image_sequence=False,
            frame_count_exact=exact,
            time_base=self._tb,
            start_s=float(first.pts * self._tb) if first.pts is not None else 0.0,
            bit_depth=int(depth),
        )

    def _first_frame(self):
        """Decode frame 0 (validates the codec and reads rotation) and keep it queued."""
        import av

        gen = self._decode_from_start()
        try:
            first = next(gen)
        except StopIteration:
            return None
        except av.error.DecoderNotFoundError:
            raise InputError(
                f"{self._path}: unsupported video codec {self._vs.codec_context.name}"
            ) from None
        self._gen = gen
        self._pending = [first]
        self._next_index = 0
        return first

    # -- decoding -----------------------------------------------------------------------

    def _decode_packets(self, packets: Iterator) -> Iterator:
        """Decode packets, skipping ones the decoder rejects (damage) and stopping at a
        demuxer error (truncation); flushes the decoder at the end."""
        import av

        cc = self._vs.codec_context
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError):
                self._damaged = True
                break
            if packet.size == 0 and packet.pts is None:
                continue  # the demuxer's end marker; flushed below
            try:
                yield from cc.decode(packet)
            except av.error.DecoderNotFoundError:
                raise
            except (av.error.FFmpegError, ValueError):
                self._damaged = True
        try:
            yield from cc.decode(None)
        except (av.error.FFmpegError, ValueError):
            self._damaged = True

    def _decode_from_start(self) -> Iterator:
        return self._decode_packets(self._c.demux(self._vs))

    def _build_pts_table(self) -> list[int]:
        """Presentation timestamps of all frames, sorted: frame index -> pts. Demuxes the
        whole stream once (no decoding) on a separate handle, so it never disturbs decoding."""
        if self._pts_table is not None:
            return self._pts_table
        import av

        pts: list[int] = []
        missing = False
        try:
            with av.open(str(self._path), metadata_errors="ignore") as c2:
                vs2 = c2.streams[self._vs.index]
                for pkt in c2.demux(vs2):
                    if pkt.size == 0:
                        continue
                    if pkt.pts is None:
                        missing = True
                        continue
                    if not pkt.is_discard:
                        pts.append(int(pkt.pts))
        except (av.error.FFmpegError, OSError, IndexError):
            pass  # truncated: keep what was read
        pts.sort()
        self._pts_table = [] if missing else pts
        self._table_count = len(pts)
        return self._pts_table

    def _to_frame(self, f, index: int) -> Frame:
        kw = {"format": "rgb24"}
        if f.colorspace == 2 or f.colorspace is None:  # unspecified
            from av.video.reformatter import Colorspace

            kw["src_colorspace"] = Colorspace.ITU709 if f.height >= 720 else Colorspace.ITU601
        if f.color_range:
            kw["src_color_range"] = f.color_range
        rgb = f.to_ndarray(**kw)
        if self._k:
            rgb = np.rot90(rgb, self._k)
        rgb = np.ascontiguousarray(rgb)
        if f.pts is not None:
            pts = float(f.pts * self._tb)
        else:
            pts = self.info.start_s + index / self.info.fps if hasattr(self, "info") else 0.0
        self._decoded_max = max(self._decoded_max, index)
        return Frame(index=index, pts=pts, rgb=rgb)

    def _next_raw(self):
        if self._pending:
            return self._pending.pop(0)
        if self._gen is None:
            return None
        try:
            return next(self._gen)
        except StopIteration:
            self._gen = None
            return None

    def _index_of(self, f) -> int | None:
        table = self._pts_table
        if table and f.pts is not None and self._pts_ordered:
            i = bisect.bisect_left(table, f.pts)
            if i < len(table) and table[i] == f.pts:
                return i
        return None

    def _seek_to(self, index: int) -> None:
        """Position the decoder so that the next raw frame is frame `index`."""
        if self._gen is not None and 0 <= index - self._next_index <= 8:
            self._skip_to(index)  # a little ahead: decoding on beats seeking
            return
        if not self._pts_ordered:  # shuffled timestamps (AVI): only counting is exact
            if self._gen is None or index < self._next_index:
                self._restart_at(0)
            self._skip_to(index)
            return
        table = self._build_pts_table()
        if table and index < len(table) and self._try_seek(table[index], index):
            return
        self._restart_at(0)  # no timestamps to seek by: decode from the start, counting
        self._skip_to(index)

    def _try_seek(self, target: int, index: int) -> bool:
        """Seek to the keyframe before `target` and decode forward to exactly it."""
        import av

        try:
            self._c.seek(target, stream=self._vs, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError):
            return False
        gen = self._decode_packets(self._c.demux(self._vs))
        first = True
        for f in gen:
            if f.pts is None or (first and f.pts > target):
                break  # the seek landed past the target
            first = False
            if f.pts >= target:  # > : the target itself is damaged; go on from here
                pos = index if f.pts == target else self._index_of(f)
                self._gen, self._pending = gen, [f]
                self._next_index = index if pos is None else pos
                return True
        self._gen = None
        return False

    def _skip_to(self, index: int) -> None:
        """Decode on until the next raw frame is frame `index` or, where that frame is
        damaged, the first decodable one after it (indices from the pts table)."""
        while self._next_index < index:
            f = self._next_raw()
            if f is None:
                raise IndexError(f"frame {index} could not be decoded (file ends earlier)")
            pos = self._index_of(f)
            pos = self._next_index if pos is None else pos
            if pos >= index:
                self._pending.insert(0, f)
                self._next_index = pos
                return
            self._next_index = pos + 1

    def _restart_at(self, index: int) -> None:
        self._c.seek(0, stream=self._vs, backward=True)
        self._gen = self._decode_packets(self._c.demux(self._vs))
        self._pending = []
        self._next_index = 0
        self._skip_to(index)

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[Frame]:
        start = max(start, 0)
        self._build_pts_table()  # indices from timestamps, whatever the damage
        self._damaged = False
        if start > 0:
            if start >= self.info.frame_count:
                return
            try:
                self._seek_to(start)
            except IndexError:
                self._check_ended(start, end, [])
                return
        elif not (self._gen is not None and self._next_index == 0):
            self._restart_at(0)
        index = start
        missing: list[int] = []  # frames of the range that could not be decoded
        while end is None or index < end:
            f = self._next_raw()
            if f is None:
                break
            pos = self._index_of(f)
            pos = index if pos is None else pos
            if pos < index:
                continue  # decoded again from a keyframe before the range
            if end is not None and pos >= end:
                self._pending.insert(0, f)  # the next read starts here
                self._next_index = pos
                missing.extend(range(index, end))
                index = end
                break
            missing.extend(range(index, pos))  # damaged: skipped, indices stay tied to pts
            frame = self._to_frame(f, pos)
            index = pos + 1
            self._next_index = index
            yield frame
        self._check_ended(index, end, missing)

    def _check_ended(self, index: int, end: int | None, missing: list[int]) -> None:
        n = self.info.frame_count
        if missing:
            span = f"frame {missing[0]}" if len(missing) == 1 else (
                f"frames {missing[0]}-{missing[-1]}" if missing[-1] - missing[0] + 1 == len(missing)
                else f"{len(missing)} frames between {missing[0]} and {missing[-1]}"
            )  # fmt: skip
            self._warn(f"{self._path}: damaged: {span} could not be decoded (skipped)")
        if (end is None or end > index) and index < n:
            self._warn(
                f"{self._path}: truncated or damaged after frame {index - 1}; "
                f"{index} of {n} frames are usable"
            )
            self.info = replace(self.info, frame_count=index, frame_count_exact=True)
        elif self._damaged and not missing:
            self._warn(f"{self._path}: damaged packets were skipped while decoding")

    def read(self, index: int) -> Frame:
        self._check_index(index)
        self._build_pts_table()
        self._seek_to(index)
        f = self._next_raw()
        if f is None:
            self._check_ended(index, None, [])
            raise IndexError(f"frame {index} could not be decoded (file ends earlier)")
        pos = self._index_of(f)
        if pos is not None and pos != index:
            self._pending.insert(0, f)
            self._next_index = pos
            raise IndexError(f"frame {index} could not be decoded (damaged)")
        frame = self._to_frame(f, index)
        self._next_index = index + 1
        return frame

    def close(self) -> None:
        self._gen = None
        self._pending = []
        c = getattr(self, "_c", None)
        if c is not None:
            c.close()
            self._c = None


def _stream_length_s(vs, container) -> float | None:
    """The video stream's length as its header states it: Matroska's per-track DURATION
    tag, else the container's duration where the video is its only stream (with audio the
    container's duration is the longest stream's)."""
    tag = (vs.metadata or {}).get("DURATION")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    if container.duration and len(container.streams) == 1:
        return container.duration / 1e6
    return None


def _rotation_cw(frame, stream) -> int:
    """Clockwise degrees that make the frame upright: the display matrix (FFmpeg attaches
    it to decoded frames), else the legacy `rotate` tag."""
    rot = 0
    try:
        ccw = frame.rotation  # counter-clockwise angle of the display matrix
    except AttributeError:  # older PyAV
        ccw = 0
    if ccw:
        rot = (-int(round(ccw / 90.0)) * 90) % 360
    else:
        tag = (stream.metadata or {}).get("rotate")
        try:
            rot = (int(round(float(tag) / 90.0)) * 90) % 360 if tag else 0
        except ValueError:
            rot = 0
    return rot
