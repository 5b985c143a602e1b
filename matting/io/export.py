"""Export of per-person results to the output layout of docs/architecture.md (CLI and GUI alike).

    out/manifest.json
    out/person_01/alpha/000000.png …        (png, png16)   or out/person_01.mov|.webm|.mkv
    out/person_01/trimap/000000.png …       (--save-trimaps)
    out/composite.mp4                       (--composite)

PNG sequences cover each person's frames from first to last appearance (file names are
source frame numbers; frames where the person is briefly missed are written as zero
alpha so the sequence has no holes). Video containers span the whole processed range
(zero alpha where the person is absent) so they line up with the source in an editor.
The manifest is written first with `"complete": false` and rewritten at the end; an
existing export is never touched without `overwrite` (replace) or `resume` (continue).

Safety (issue 23): every option is validated before any file or folder exists
(`validate_export`); one writer per folder (`FolderLock`, refused with exit 6 while another
run holds it); the manifest records what the export depends on (`depends`: the input's
content identity, the range, the pixel-changing settings of PipelineConfig and of
ExportConfig, the model) and `resume` refuses a folder whose `depends` differ, naming
what differs; a resume of a complete export with the same `depends` changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidmatte.matting.io.formats import ALPHA_FORMATS, CONTAINER_FORMATS
from vidmatte.matting.pipeline import FrameResult
from vidmatte.models import __version__
from vidmatte.models.errors import InputError, OutputError, UsageError

if TYPE_CHECKING:
    from vidmatte.matting.io.video import VideoInfo


def person_name(track_id: int) -> str:
    return f"person_{track_id:02d}"


def folder_names(names: dict[int, str]) -> dict[int, str]:
    """Display names -> safe, unique folder names ("Anna K." -> "Anna_K"); person_XX where a
    name has nothing usable. Names the user never changed stay person_XX."""
    out: dict[int, str] = {}
    used: set[str] = set()
    for tid in sorted(names):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", names[tid].strip()).strip("._-")[:64]
        if not slug or slug.lower() in ("manifest.json", "composite.mp4"):
            slug = person_name(tid)
        base, k = slug, 2
        while slug.lower() in used:
            slug = f"{base}_{k}"
            k += 1
        used.add(slug.lower())
        out[tid] = slug
    return out


@dataclass
class ExportConfig:
    """What to write. Fields marked `runtime` say how to treat an existing folder; every
    other field changes the output and is part of the manifest's `depends`."""

    fmt: str = "png"
    persons: frozenset[int] | None = None  # export only these IDs (None: everyone)
    composite: str | None = None  # colour, image path or video path
    save_trimaps: bool = False
    overwrite: bool = field(default=False, metadata={"runtime": True})
    resume: bool = field(default=False, metadata={"runtime": True})

    def output_settings(self) -> dict[str, Any]:
        """The fields that change what is written (for `depends`; `fmt` under the name of
        its option, `format`)."""
        return {
            "format" if f.name == "fmt" else f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.metadata.get("runtime")
        }


def validate_export(config: ExportConfig) -> None:
    """UsageError (exit 2) for any bad export option, before anything is written: the
    format, and the composite background (a colour, or an image/video that decodes)."""
    if config.fmt not in ALPHA_FORMATS:
        raise UsageError(f"--format {config.fmt!r}: choose one of {', '.join(ALPHA_FORMATS)}")
    if config.composite is None:
        return
    bg = parse_background(config.composite)
    if isinstance(bg, Path):
        from vidmatte.matting.io.video import open_video

        try:
            with open_video(bg) as r:
                r.read(0)
        except (InputError, IndexError) as e:
            raise UsageError(f"--composite {config.composite!r}: {e}") from None


@dataclass
class _TrackStats:
    first: int
    last: int
    frames: int = 0
    score_sum: float = 0.0


@dataclass
class Exporter:
    out_dir: Path
    info: VideoInfo
    config: ExportConfig
    start: int = 0
    end: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    #: display names (GUI renames): they also name the output folders/files, made safe
    names: dict[int, str] = field(default_factory=dict)
    #: what the export depends on (input identity, range, settings, model); None: unchecked
    depends: dict[str, Any] | None = None
    #: a batch token (Ray): a retried task resumes the folder its own batch started
    batch: str | None = None

    def __post_init__(self) -> None:
        from vidmatte.matting.io.atomic import FolderLock

        self.out_dir = Path(self.out_dir)
        validate_export(self.config)
        #: the manifest of an export that is already complete with the same `depends`
        #: (resume): nothing is written, `close()` only releases the folder
        self.finished: dict[str, Any] | None = None
        self._folders = folder_names(self.names)
        self._writers: dict[int, Any] = {}
        self._last_written: dict[int, int] = {}
        self._stats: dict[int, _TrackStats] = {}
        self._composite = None
        self._last_index = self.start - 1
        self._pts: dict[int, float] = {}  # every processed frame's time, for gap frames
        self._container = self.config.fmt in CONTAINER_FORMATS
        self._check_space()
        self._lock = FolderLock(self.out_dir).acquire()
        try:
            self._prepare_dir()
            if self.finished is None:
                self._write_manifest(complete=False)
                self._lock.keep_folder()
        except BaseException:
            self._lock.release()
            raise

    # ---------------------------------------------------------------- setup
    def _check_space(self) -> None:
        """Before anything exists: the output's file system is writable and has room."""
        from vidmatte.matting.io.atomic import check_free_space

        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        w, h = self.info.width, self.info.height
        n = max(1, (self.end or self.info.frame_count or 1) - self.start)
        # PNG alpha of one person compresses to ~1/10 of raw, plus a block per file.
        check_free_space(out, needed_bytes=int(w * h * n * 0.1) + 4096 * n)

    def _prepare_dir(self) -> None:
        """Under the folder lock: refuse, resume-check or clear what is there."""
        from vidmatte.matting.io.atomic import LOCK_NAME, is_temp_name
        from vidmatte.matting.io.manifest import depends_differences, read_manifest

        out, cfg = self.out_dir, self.config
        existing = [e for e in out.iterdir() if e.name != LOCK_NAME and not is_temp_name(e.name)]
        if existing and not (cfg.overwrite or cfg.resume):
            raise OutputError(
                f"{out} is not empty; pass --overwrite to replace it or --resume to continue it"
            )
        if not existing:
            return
        try:
            old = read_manifest(out)
        except InputError:
            old = None
        if cfg.resume:
            if old is None:
                raise OutputError(
                    f"--resume: {out} holds no vidmatte manifest, so there is nothing to "
                    "continue; pass --overwrite to replace what is there"
                )
            if self.depends is not None:
                diffs = depends_differences(old.get("depends"), self.depends)
                if diffs:
                    raise OutputError(
                        f"--resume: {out} was written for a different export: "
                        f"{'; '.join(diffs)}; pass --overwrite to replace it"
                    )
                if old.get("complete"):
                    self.finished = old
            return
        self._remove_previous(old)

    def _remove_previous(self, old: dict | None) -> None:
        """--overwrite: remove only what a vidmatte export wrote, nothing else."""
        out = self.out_dir
        listed = [
            out / Path(t[key]).parts[0]
            for t in (old or {}).get("tracks", [])
            for key in ("alpha", "trimap")
            if isinstance(t.get(key), str) and t[key] and not Path(t[key]).is_absolute()
        ]
        for p in listed:
            if p.resolve().parent == out.resolve() and p.is_dir():
                shutil.rmtree(p)
            elif p.resolve().parent == out.resolve() and p.is_file():
                p.unlink()
        for p in out.glob("person_*"):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.suffix in (".mov", ".webm", ".mkv"):
                p.unlink()
        if old and old.get("composite"):
            (out / old["composite"]).unlink(missing_ok=True)

    # ---------------------------------------------------------------- writing
    def done(self, frame_index: int, track_ids: set[int]) -> bool:
        """True when every output of this frame already exists intact (resume)."""
        if not self.config.resume or self._composite is not None or self.config.composite:
            return False
        for tid in track_ids:
            if not self._wanted(tid):
                continue
            w = self._writer(tid, frame_index)
            if not w.done(frame_index):
                return False
            if self.config.save_trimaps and not self._trimap_path(tid, frame_index).is_file():
                return False
        return True

    def _folder(self, tid: int) -> str:
        return self._folders.get(tid) or person_name(tid)

    def _wanted(self, tid: int) -> bool:
        return self.config.persons is None or tid in self.config.persons

    def _writer(self, tid: int, frame_index: int):
        from vidmatte.matting.io.alpha import open_alpha_writer

        w = self._writers.get(tid)
        if w is None:
            w = open_alpha_writer(
                self.config.fmt,
                self.out_dir,
                self._folder(tid),
                self.info,
                overwrite=self.config.overwrite,
                resume=self.config.resume,
                frames=self._range_frames(),
            )
            self._writers[tid] = w
            if self._container:
                self._fill(tid, w, self.start, frame_index)
        return w

    def _range_frames(self) -> int:
        """Frames a container of this export spans (the processed range)."""
        end = self.info.frame_count if self.end is None else min(self.end, self.info.frame_count)
        return max(0, end - self.start)

    def _fill(self, tid: int, w, first: int, stop: int) -> None:
        """Zero alpha for frames [first, stop) where the person is absent."""
        if stop <= first:
            return
        zeros = np.zeros((self.info.height, self.info.width), np.uint8)
        for i in range(first, stop):
            if not w.done(i):
                w.write(i, zeros, pts=self._pts.get(i))
        self._last_written[tid] = stop - 1

    def write(self, result: FrameResult) -> None:
        index = result.frame.index
        self._last_index = index
        self._pts[index] = result.frame.pts
        union = None
        for tid, person in result.people.items():
            if not self._wanted(tid):
                continue
            st = self._stats.get(tid)
            if st is None:
                st = self._stats[tid] = _TrackStats(first=index, last=index)
            st.last = index
            st.frames += 1
            st.score_sum += person.score
            w = self._writer(tid, index)
            last = self._last_written.get(tid)
            if last is not None and last < index - 1:
                self._fill(tid, w, last + 1, index)
            if person.alpha is not None:
                # containers carry the source colour too: a ready RGBA cut-out for editors
                rgb = result.frame.rgb if self._container else None
                w.write(index, person.alpha, pts=result.frame.pts, rgb=rgb)
                union = person.alpha if union is None else np.maximum(union, person.alpha)
            self._last_written[tid] = index
            if self.config.save_trimaps:
                from vidmatte.matting.io.alpha import write_trimap_png

                path = self._trimap_path(tid, index)
                if not (self.config.resume and path.is_file()):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_trimap_png(path, person.trimap)
        if self._container:  # keep every open container in step, frame by frame
            for tid, w in self._writers.items():
                if tid not in result.people and self._last_written.get(tid, -1) < index:
                    self._fill(tid, w, self._last_written.get(tid, self.start - 1) + 1, index + 1)
        if self.config.composite:
            self._write_composite(result, union)

    def _end_time(self) -> float | None:
        """Where the processed range ends in source time (None: the end of the source)."""
        if self.end is None or self.end >= self.info.frame_count:
            return None
        return self.info.start_s + self.end / self.info.fps

    def _trimap_path(self, tid: int, index: int) -> Path:
        return self.out_dir / self._folder(tid) / "trimap" / f"{index:06d}.png"

    def _write_composite(self, result: FrameResult, union: np.ndarray | None) -> None:
        from vidmatte.matting.io.composite import open_composite_writer

        if self._composite is None:
            self._composite = open_composite_writer(
                self.out_dir / "composite.mp4",
                self.info,
                parse_background(self.config.composite),
                audio_from=None if self.info.is_image_sequence else self.info.path,
                overwrite=self.config.overwrite or self.config.resume,
                audio_range=(result.frame.pts, self._end_time()),
            )
        if union is None:
            union = np.zeros((self.info.height, self.info.width), np.uint8)
        self._composite.write(result.frame, union)

    # ---------------------------------------------------------------- finishing
    def tracks(self, names: dict[int, str] | None = None) -> list[dict[str, Any]]:
        if self.finished is not None:
            return list(self.finished.get("tracks", []))
        out = []
        for tid in sorted(self._stats):
            st = self._stats[tid]
            entry = {
                "id": tid,
                "name": (names or self.names).get(tid, person_name(tid)),
                "first": st.first,
                "last": st.last,
                "frames": st.frames,
                "mean_score": round(st.score_sum / max(st.frames, 1), 4),
                "alpha": self._output_rel(tid),
            }
            if self.config.save_trimaps:
                entry["trimap"] = f"{self._folder(tid)}/trimap"
            out.append(entry)
        return out

    def _output_rel(self, tid: int) -> str:
        from vidmatte.matting.io.alpha import alpha_output_path

        p = alpha_output_path(self.out_dir, self._folder(tid), self.config.fmt)
        return p.relative_to(self.out_dir).as_posix()

    def close(self, names: dict[int, str] | None = None) -> Path:
        """Finalise every file and write the complete manifest; returns its path. Releases
        the folder."""
        try:
            return self._close(names)
        finally:
            self._lock.release()

    def _close(self, names: dict[int, str] | None) -> Path:
        from vidmatte.matting.io.manifest import MANIFEST_NAME

        if self.finished is not None:
            return self.out_dir / MANIFEST_NAME
        if self._container:
            for tid, w in self._writers.items():
                last = self._last_written.get(tid, self.start - 1)
                self._fill(tid, w, last + 1, self._last_index + 1)
        for w in self._writers.values():
            w.close()
        if self._composite is not None:
            self._composite.close()
        return self._write_manifest(complete=True, names=names)

    def abort(self) -> None:
        """Leave what is written resumable; no half files under final names. Releases the
        folder."""
        for w in self._writers.values():
            with contextlib.suppress(Exception):
                w.abort()
        if self._composite is not None:
            with contextlib.suppress(Exception):
                abort = getattr(self._composite, "abort", None)
                (abort or self._composite.close)()
        self._lock.release()

    def _write_manifest(self, complete: bool, names: dict[int, str] | None = None) -> Path:
        from vidmatte.matting.io.manifest import SCHEMA_VERSION, write_manifest

        info = self.info
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "vidmatte_version": __version__,
            "complete": complete,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": {
                "path": str(info.path),
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "frame_count": info.frame_count,
                "rotation": info.rotation,
                "has_audio": info.has_audio,
            },
            "range": {"start": self.start, "end": self._last_index + 1 if complete else self.end},
            "model": self.model,
            "settings": {**self.settings, "format": self.config.fmt},
            "tracks": self.tracks(names),
        }
        if self.config.composite:
            manifest["composite"] = "composite.mp4"
        if self.depends is not None:
            manifest["depends"] = self.depends
        if self.batch is not None:
            manifest["batch"] = self.batch
        return write_manifest(self.out_dir, manifest)


def parse_background(spec: str | None) -> tuple[int, int, int] | Path:
    """A colour (composite.parse_colour: a name of NAMED_COLOURS, '#00b140', '0,177,64') ->
    RGB; anything else must be an image or video file. None: chroma-key green."""
    from vidmatte.matting.io.composite import NAMED_COLOURS, parse_colour

    if spec is None:
        return NAMED_COLOURS["green"]
    colour = parse_colour(spec)
    if colour is not None:
        return colour
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    raise UsageError(
        f"--composite {spec!r}: not a colour (name, #rrggbb, r,g,b) nor an existing image/video"
    )
