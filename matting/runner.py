"""Run the pipeline over one input into one output folder (what the CLI does per input).

Encoding overlaps with inference: results go to a single export thread through a short
queue (two frames in flight), so PNG/ProRes encoding runs while the next batch is
detected and matted. Any failure aborts the export cleanly: files already written stay
valid and `--resume` continues from them.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidmatte.matting.io.export import ExportConfig, Exporter
from vidmatte.matting.pipeline import Pipeline
from vidmatte.matting.progress import Progress
from vidmatte.models.errors import NoPersonError, UsageError


@dataclass
class RunSummary:
    input: Path
    out_dir: Path
    manifest: Path
    frames: int
    seconds: float
    tracks: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False  # already complete (resume): nothing was processed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)s?$")


def parse_position(spec: str | None, fps: float, default: int | None) -> int | None:
    """'150' = frame 150; '2.5s', '2.5', '1:02.5' = a time, rounded to the nearest frame."""
    if spec is None or spec == "":
        return default
    s = spec.strip().lower()
    if s.isdigit():
        return int(s)
    m = _TIME.match(s)
    if not m:
        raise UsageError(f"{spec!r} is neither a frame number (150) nor a time (2.5s, 1:02.5)")
    a, b, c = m.groups()
    parts = [float(x) for x in (a, b, c) if x is not None]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return int(round(seconds * fps))


def run_one(
    input_path: str | Path,
    out_dir: str | Path,
    pipeline: Pipeline,
    export: ExportConfig,
    *,
    start: str | None = None,
    end: str | None = None,
    progress=None,
    cancel: threading.Event | None = None,
    on_warning: Callable[[str], None] | None = None,
    batch: str | None = None,
) -> RunSummary:
    """Matte one video into out_dir. Raises VidmatteError subclasses on user errors.

    `on_warning` gets each of the reader's one-line notes (damage, truncation) once, also
    when the run then fails. `batch`: a token recorded in the manifest (Ray batches: a
    retried task recognises the folder its batch started). A resume of an export that is
    already complete with the same `depends` writes nothing and reports it (`skipped`).
    """
    from vidmatte.matting.io.video import open_video

    t_start = time.perf_counter()
    name = Path(input_path).name
    seen: set[int] = set()  # every person tracked, chosen or not
    with open_video(input_path) as reader:
        try:
            info = reader.info
            first = parse_position(start, info.fps, 0) or 0
            last = parse_position(end, info.fps, None)
            if info.frame_count and first >= info.frame_count:
                raise UsageError(f"--start {start} is past the end ({info.frame_count} frames)")
            if last is not None and last <= first:
                raise UsageError(f"--end {end} is not after --start {start or 0}")
            exporter = Exporter(
                out_dir,
                info,
                export,
                start=first,
                end=last,
                settings=_settings(pipeline, export, start, end),
                model=pipeline.describe(),
                depends=export_depends(pipeline, export, input_path, info, first, last),
                batch=batch,
            )
            if exporter.finished is not None:
                manifest = exporter.close()
                summary = RunSummary(
                    input=Path(input_path), out_dir=Path(out_dir), manifest=manifest,
                    frames=0, seconds=time.perf_counter() - t_start,
                    tracks=exporter.tracks(), skipped=True,
                )  # fmt: skip
                if not summary.tracks:
                    raise NoPersonError(f"no person found in {name} (export already complete)")
                return summary

            def report(p: Progress) -> None:
                if progress is not None:
                    p.input = name
                    progress(p)

            frames = 0
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidmatte-export")
            inflight: list[Future] = []
            try:
                for result in pipeline.process(
                    reader,
                    start=first,
                    end=last,
                    cancel=cancel,
                    progress=report,
                    skip_matting=exporter.done if export.resume else None,
                ):
                    seen.update(getattr(result, "track_ids", ()) or result.people)
                    inflight.append(pool.submit(exporter.write, result))
                    while len(inflight) > 2:
                        inflight.pop(0).result()
                    frames += 1
                for f in inflight:
                    f.result()
                inflight.clear()
                manifest = exporter.close()
            except BaseException:
                for f in inflight:
                    f.cancel()
                pool.shutdown(wait=True)
                exporter.abort()
                raise
            pool.shutdown(wait=True)
        finally:
            if on_warning is not None:
                for w in reader.warnings:
                    on_warning(w)
        warnings = list(getattr(reader, "warnings", []))
    summary = RunSummary(
        input=Path(input_path),
        out_dir=Path(out_dir),
        manifest=manifest,
        frames=frames,
        seconds=time.perf_counter() - t_start,
        tracks=exporter.tracks(),
        timings=dict(pipeline.timings),
        warnings=warnings,
    )
    wanted = export.persons
    if wanted and seen and not wanted & seen:
        raise NoPersonError(
            f"{name}: nobody with --persons {','.join(map(str, sorted(wanted)))} "
            f"(people found: {', '.join(map(str, sorted(seen)))}); the manifest was still "
            f"written to {manifest}"
        )
    if not summary.tracks:
        raise NoPersonError(
            f"no person found in {name} ({frames} frames); "
            f"the manifest was still written to {manifest}"
        )
    if wanted and wanted - seen:
        msg = (
            f"{name}: no person {', '.join(map(str, sorted(wanted - seen)))} "
            f"(people found: {', '.join(map(str, sorted(seen)))})"
        )
        summary.warnings.append(msg)
        if on_warning is not None:
            on_warning(msg)
    return summary


def export_depends(
    pipeline: Pipeline, export: ExportConfig, input_path, info, first: int, last: int | None
) -> dict[str, Any]:
    """What an export's files depend on, for the manifest and --resume: the input's content,
    the range, every PipelineConfig and ExportConfig field that is not marked `runtime`,
    and the model that ran (weights sha256, resolved threshold and fp16; not the device)."""
    from vidmatte.matting.io.manifest import input_identity, normalised

    cfg = pipeline.config
    return normalised(
        {
            "input": input_identity(input_path, info.frame_count),
            "range": {"start": first, "end": last},
            "export": export.output_settings(),
            "pipeline": {
                f.name: getattr(cfg, f.name)
                for f in dataclasses.fields(cfg)
                if not f.metadata.get("runtime")
            },
            "model": {k: v for k, v in pipeline.describe().items() if k != "device"},
        }
    )


def _settings(pipeline: Pipeline, export: ExportConfig, start, end) -> dict[str, Any]:
    c = pipeline.config
    return {
        "source": c.source,
        "matter": c.matter,
        "min_score": pipeline.min_score,
        "max_persons": c.max_persons,
        "persons": sorted(export.persons) if export.persons else None,
        "start": start,
        "end": end,
        "composite": export.composite,
        "save_trimaps": export.save_trimaps,
        "smooth": c.smooth,
    }
