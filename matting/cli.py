"""`vidmatte-cli`: one alpha matte per person, from the command line.

    vidmatte-cli input.mp4 --out mattes/           one input writes into mattes/
    vidmatte-cli a.mp4 b.mov clips/ --out mattes/  several inputs: mattes/<name>/
    vidmatte-cli weights list|download|verify|path

Exit codes: 0 done; 2 usage; 3 input unreadable; 4 no person found (manifest still
written); 5 weights missing or corrupt; 6 output problem; 130 interrupted (resumable).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from vidmatte.models import __version__
from vidmatte.models.errors import Cancelled, UsageError, VidmatteError, guarded_main

PROG = "vidmatte-cli"
VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".mpg", ".3gp"}
FORMATS = ("png", "png16", "prores", "webm", "ffv1")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Cut every person out of a video as their own alpha matte.",
        epilog="Also: `vidmatte-cli weights {list,download,verify,path}`. "
        "Exit codes: 0 ok, 2 usage, 3 input unreadable, 4 no person found, "
        "5 weights missing/corrupt, 6 output problem, 130 interrupted.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file(s), image folder(s)")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    g = p.add_argument_group("models")
    g.add_argument("--weights", help="trimap network model folder (default: shipped/env/Hub cache)")
    g.add_argument("--teacher-dir", help="teacher files folder (default: $VIDMATTE_TEACHER_DIR)")
    g.add_argument("--source", default="auto", choices=("auto", "network", "teacher"))
    g.add_argument("--matter", default="auto", choices=("auto", "indexnet", "classical"))
    g.add_argument("--matting-weights", help="IndexNet model folder")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--no-fp16", action="store_true", help="full precision on GPU")
    g.add_argument("--batch-size", type=int, default=4)
    s = p.add_argument_group("people")
    s.add_argument("--persons", help="export only these person IDs, e.g. 1,3")
    s.add_argument("--max-persons", type=int, default=8, help="at most this many per frame")
    s.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="person score threshold (default: the weights' calibrated one; teacher 0.5)",
    )
    s.add_argument("--smooth", action="store_true", help="smooth trimaps along each track")
    r = p.add_argument_group("range and output")
    r.add_argument("--start", help="first frame (150) or time (2.5s, 1:02.5)")
    r.add_argument("--end", help="end frame (exclusive) or time")
    r.add_argument("--format", default="png", choices=FORMATS, help="alpha format")
    r.add_argument("--composite", help="also write composite.mp4 over a colour, image or video")
    r.add_argument("--save-trimaps", action="store_true", help="person_XX/trimap/NNNNNN.png")
    r.add_argument("--overwrite", action="store_true", help="replace an existing export")
    r.add_argument("--resume", action="store_true", help="continue an interrupted export")
    r.add_argument("--shard", help="i/n: process the i-th (1-based) of n slices of the inputs")
    o = p.add_argument_group("terminal")
    o.add_argument("--json", action="store_true", help="machine-readable progress lines")
    o.add_argument("--quiet", "-q", action="store_true", help="errors only")
    return p


def _persons(spec: str | None) -> frozenset[int] | None:
    if not spec:
        return None
    try:
        ids = frozenset(int(x) for x in spec.replace(" ", "").split(",") if x)
    except ValueError:
        raise UsageError(f"--persons {spec!r}: give IDs like 1,3") from None
    if not ids or min(ids) < 1:
        raise UsageError(f"--persons {spec!r}: IDs start at 1")
    return ids


def _shard(spec: str | None) -> tuple[int, int] | None:
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard {spec!r}: use i/n, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {spec!r}: i must be between 1 and n")
    return i, n


def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Input paths -> the videos to process, and whether this is a batch (DIR/<name>/).

    A folder holding videos is a batch of those videos; a folder of images is one input
    (an image sequence).
    """
    items: list[Path] = []
    batch = len(inputs) > 1
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            videos = sorted(f for f in path.iterdir() if f.suffix.lower() in VIDEO_EXTS)
            if videos:
                items.extend(videos)
                batch = True
                continue
        items.append(path)
    return items, batch


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["weights"]:
        from vidmatte.matting.weights_cli import main as weights_main

        return weights_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.json and args.quiet:
        raise UsageError("--json and --quiet exclude each other")
    if args.batch_size < 1 or args.max_persons < 1:
        raise UsageError("--batch-size and --max-persons must be at least 1")
    persons = _persons(args.persons)
    shard = _shard(args.shard)
    inputs, batch = expand_inputs(args.inputs)
    if shard:
        i, n = shard
        inputs = inputs[i - 1 :: n]
    mode = "json" if args.json else "quiet" if args.quiet else "auto"

    from vidmatte.matting.config import PipelineConfig
    from vidmatte.matting.io.export import ExportConfig
    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.matting.progress import TerminalProgress
    from vidmatte.matting.runner import run_one

    pipeline = Pipeline(
        PipelineConfig(
            source=args.source,
            weights=args.weights,
            teacher_dir=args.teacher_dir,
            matter=args.matter,
            matting_weights=args.matting_weights,
            device=args.device,
            fp16=not args.no_fp16,
            batch_size=args.batch_size,
            max_persons=args.max_persons,
            min_score=args.min_score,
            persons=persons,
            smooth=args.smooth,
        )
    )
    say = _Say(mode)
    say.info(f"vidmatte {__version__}: {pipeline.summary_line()}")
    export = ExportConfig(
        fmt=args.format,
        persons=persons,
        composite=args.composite,
        save_trimaps=args.save_trimaps,
        overwrite=args.overwrite,
        resume=args.resume,
    )
    cancel = threading.Event()
    first_error = 0
    for path in inputs:
        out = args.out / path.stem if batch else args.out
        bar = TerminalProgress(mode)
        try:
            summary = run_one(
                path, out, pipeline, export, start=args.start, end=args.end,
                progress=bar, cancel=cancel,
            )  # fmt: skip
        except (KeyboardInterrupt, Cancelled):
            bar.finish()
            say.error(f"interrupted; rerun with --resume to continue {out}")
            return 130
        except VidmatteError as e:
            bar.finish()
            if not batch:
                raise
            say.error(f"{path.name}: {e}")
            say.event(
                {"event": "error", "input": str(path), "code": e.exit_code, "message": str(e)}
            )
            first_error = first_error or e.exit_code
            continue
        bar.finish()
        for w in summary.warnings:
            say.warn(f"{path.name}: {w}")
        people = ", ".join(f"{t['name']} (frames {t['first']}-{t['last']})" for t in summary.tracks)
        say.info(
            f"{path.name}: {len(summary.tracks)} person(s): {people}; "
            f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps) -> {out}"
        )
        say.event(
            {
                "event": "done",
                "input": str(path),
                "out": str(out),
                "manifest": str(summary.manifest),
                "frames": summary.frames,
                "seconds": round(summary.seconds, 3),
                "tracks": summary.tracks,
            }
        )
    return first_error


class _Say:
    """Terminal messages: human lines on stderr, or JSON events on stdout with --json."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def info(self, msg: str) -> None:
        if self.mode not in ("quiet", "json"):
            print(msg, file=sys.stderr)

    def warn(self, msg: str) -> None:
        if self.mode == "json":
            self.event({"event": "warning", "message": msg})
        elif self.mode != "quiet":
            print(f"{PROG}: warning: {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        print(f"{PROG}: error: {msg}", file=sys.stderr)

    def event(self, obj: dict) -> None:
        if self.mode == "json":
            print(json.dumps(obj, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    return guarded_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
