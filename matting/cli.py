"""`vidmatte-cli`: one alpha matte per person, from the command line.

    vidmatte-cli input.mp4 --out mattes/           one input writes into mattes/
    vidmatte-cli a.mp4 b.mov clips/ --out mattes/  several inputs: mattes/<name>/
    vidmatte-cli clips/ --out mattes/ --ray [ADDRESS]   one Ray task per input (matting/ray_batch.py)
    vidmatte-cli weights list|download|verify|path

Exit codes: 0 done; 2 usage; 3 input unreadable; 4 no person found (manifest still
written); 5 weights missing or corrupt; 6 output problem (also: the folder is in use by
another run, or --resume on a folder written for another input/settings); 7 a Ray task
failed for good (its worker or node died more often than --ray-retries); 130 interrupted
by Ctrl-C, 143 by SIGTERM (both stop cleanly and are resumable). Every option is checked
before any model loads or any output exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import warnings
from collections import defaultdict
from pathlib import Path

from vidmatte.matting.config import MATTERS, SOURCES
from vidmatte.matting.io.formats import ALPHA_FORMATS
from vidmatte.models import __version__
from vidmatte.models.errors import Cancelled, UsageError, VidmatteError, guarded_main

PROG = "vidmatte-cli"
VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".mpg", ".3gp"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Cut every person out of a video as their own alpha matte.",
        epilog="Also: `vidmatte-cli weights {list,download,verify,path}`. "
        "Exit codes: 0 ok, 2 usage, 3 input unreadable, 4 no person found, "
        "5 weights missing/corrupt, 6 output problem or folder in use, 7 Ray task failed, "
        "130 interrupted, 143 terminated.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file(s), image folder(s)")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    g = p.add_argument_group("models")
    g.add_argument("--weights", help="trimap network model folder (default: shipped/env/Hub cache)")
    g.add_argument("--teacher-dir", help="teacher files folder (default: $VIDMATTE_TEACHER_DIR)")
    g.add_argument("--source", default="auto", choices=SOURCES)
    g.add_argument("--matter", default="auto", choices=MATTERS)
    g.add_argument("--matting-weights", help="IndexNet model folder")
    g.add_argument(
        "--trimaps",
        metavar="DIR",
        help="matte the trimaps or masks in DIR/person_XX/trimap/NNNNNN.png (no instance stage)",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--no-fp16", action="store_true", help="full precision on GPU")
    g.add_argument(
        "--batch-size", type=int, default=None, help="frames per network call (4 on CUDA, else 1)"
    )
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
    r.add_argument("--format", default="png", choices=ALPHA_FORMATS, help="alpha format")
    r.add_argument("--composite", help="also write composite.mp4 over a colour, image or video")
    r.add_argument("--save-trimaps", action="store_true", help="person_XX/trimap/NNNNNN.png")
    r.add_argument("--overwrite", action="store_true", help="replace an existing export")
    r.add_argument("--resume", action="store_true", help="continue an interrupted export")
    b = p.add_argument_group("batches")
    b.add_argument("--shard", help="i/n: process the i-th (1-based) of n slices of the inputs")
    b.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="one Ray task per input: join the cluster at ADDRESS (host:port, ray://host:port, "
        "auto) or $RAY_ADDRESS; with neither, start a local one (pip install 'vidmatte[ray]')",
    )
    b.add_argument(
        "--ray-cpus",
        type=float,
        default=2.0,
        help="CPUs each task asks for on a cluster without GPUs (default 2; with GPUs: 1 GPU)",
    )
    b.add_argument(
        "--ray-retries",
        type=int,
        default=3,
        help="times a task is retried when its worker or node dies (default 3)",
    )
    o = p.add_argument_group("terminal")
    o.add_argument("--json", action="store_true", help="machine-readable progress lines")
    o.add_argument("--quiet", "-q", action="store_true", help="errors only")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled exactly like Ctrl-C (clean stop, resumable), reported as exit 143."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


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


def _min_score(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"--min-score {value}: give a score between 0 and 1")
    return value


_RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|\[?[\w.\-:]+\]?:\d+)$")


def _ray_arg(argv: list[str]) -> list[str]:
    """`--ray` takes an optional ADDRESS; a bare `--ray` before the inputs must not eat the
    first input, so it becomes `--ray=` unless the next word looks like an address."""
    out = list(argv)
    for k, a in enumerate(out):
        if a == "--":
            break
        if a == "--ray":
            nxt = out[k + 1] if k + 1 < len(out) else None
            if nxt is None or not _RAY_ADDRESS.match(nxt) or Path(nxt).exists():
                out[k] = "--ray="
    return out


def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Input paths -> the videos to process, and whether this is a batch (DIR/<name>/).

    A folder holding videos is a batch of those videos; a folder of images is one input
    (an image sequence). The same file named twice is processed once.
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
    seen: set[str] = set()
    unique = []
    for p in items:
        key = os.path.realpath(p) if p.exists() else str(p.absolute())
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, batch


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "input"


def output_names(paths: list[Path]) -> list[str]:
    """One folder name per input of a batch (DIR/<name>/), unique and deterministic: the
    file's stem; where stems clash, prefixed by the shortest run of parent folders that
    tells them apart (d1/x.mp4, d2/x.mp4 -> d1_x, d2_x); the same stem in one folder gets
    its extension (x.mp4, x.mov -> x_mp4, x_mov). Computed over the whole batch before
    --shard or Ray split it, so every machine names every input alike."""
    names = [_slug(p.stem) for p in paths]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(names):
        groups[n.lower()].append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        parents = [[_slug(x) for x in paths[i].absolute().parent.parts[1:]] for i in idx]
        for k in range(1, max(len(x) for x in parents) + 1):
            cand = ["_".join([*par[-k:], names[i]]) for par, i in zip(parents, idx, strict=True)]
            if len({c.lower() for c in cand}) == len(cand):
                break
        else:
            cand = [f"{names[i]}_{_slug(paths[i].suffix.lstrip('.'))}" for i in idx]
        for c, i in zip(cand, idx, strict=True):
            names[i] = c
    used: set[str] = set()
    for i, n in enumerate(names):  # any clash left (a prefixed name equal to a stem): _2, _3
        base, k = n, 2
        while n.lower() in used:
            n, k = f"{base}_{k}", k + 1
        used.add(n.lower())
        names[i] = n
    return names


def pipeline_config(args: argparse.Namespace, persons: frozenset[int] | None):
    """The command line's PipelineConfig (the one list of model settings, shared with the
    GUI)."""
    from vidmatte.matting.config import PipelineConfig

    return PipelineConfig(
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
        trimaps=args.trimaps,
    )


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["weights"]:
        from vidmatte.matting.weights_cli import main as weights_main

        return weights_main(argv[1:])
    args = build_parser().parse_args(_ray_arg(argv))
    mode = "json" if args.json else "quiet" if args.quiet else "auto"
    say = _Say(mode)
    try:
        return _run(args, say)
    except Terminated:
        say.error("terminated; rerun with --resume to continue")
        return 143


def _run(args: argparse.Namespace, say: _Say) -> int:
    from vidmatte.matting.io.export import ExportConfig, validate_export
    from vidmatte.matting.io.video import TruncatedInputWarning

    # Every option is checked here, before any model loads or any output exists.
    if args.json and args.quiet:
        raise UsageError("--json and --quiet exclude each other")
    if (args.batch_size is not None and args.batch_size < 1) or args.max_persons < 1:
        raise UsageError("--batch-size and --max-persons must be at least 1")
    _min_score(args.min_score)
    if args.ray is None and (args.ray_cpus != 2.0 or args.ray_retries != 3):
        raise UsageError("--ray-cpus and --ray-retries go with --ray")
    if not args.ray_cpus > 0 or args.ray_retries < 0:
        raise UsageError("--ray-cpus must be above 0 and --ray-retries at least 0")
    persons = _persons(args.persons)
    shard = _shard(args.shard)
    export = ExportConfig(
        fmt=args.format,
        persons=persons,
        composite=args.composite,
        save_trimaps=args.save_trimaps,
        overwrite=args.overwrite,
        resume=args.resume,
    )
    validate_export(export)
    inputs, batch = expand_inputs(args.inputs)
    if args.trimaps is not None and (batch or len(inputs) != 1):
        raise UsageError("--trimaps goes with exactly one input (its trimaps are per video)")
    names = output_names(inputs)
    jobs = [(p, args.out / n if batch else args.out) for p, n in zip(inputs, names, strict=True)]
    if shard:
        i, n = shard
        jobs = jobs[i - 1 :: n]
        if not jobs:
            say.warn(f"shard {i}/{n} has no input ({len(inputs)} input(s) in all); nothing to do")
            return 0
    # The reader's damage notes are printed once, by us, as one line each.
    warnings.filterwarnings("ignore", category=TruncatedInputWarning)
    config = pipeline_config(args, persons)
    if args.ray is not None:
        from vidmatte.matting.ray_batch import RayOptions, run_batch

        ray_opts = RayOptions(args.ray, args.ray_cpus, args.ray_retries)
        return run_batch(jobs, config, export, ray_opts, start=args.start, end=args.end, say=say)

    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.matting.progress import TerminalProgress
    from vidmatte.matting.runner import run_one

    pipeline = Pipeline(config)
    say.info(f"vidmatte {__version__}: {pipeline.summary_line()}")
    cancel = threading.Event()
    first_error = 0
    for path, out in jobs:
        bar = TerminalProgress(say.mode)
        try:
            summary = run_one(
                path, out, pipeline, export, start=args.start, end=args.end,
                progress=bar, cancel=cancel, on_warning=say.warn,
            )  # fmt: skip
        except Terminated:
            bar.finish()
            say.error(f"terminated; rerun with --resume to continue {out}")
            return 143
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
        say.info(describe_summary(path, summary))
        say.event(
            {
                "event": "done",
                "input": str(path),
                "out": str(out),
                "manifest": str(summary.manifest),
                "frames": summary.frames,
                "seconds": round(summary.seconds, 3),
                "tracks": summary.tracks,
                "skipped": summary.skipped,
            }
        )
    return first_error


def describe_summary(path: Path, summary) -> str:
    """One line per finished input."""
    people = ", ".join(f"{t['name']} (frames {t['first']}-{t['last']})" for t in summary.tracks)
    if summary.skipped:
        return (
            f"{path.name}: already complete in {summary.out_dir} "
            f"({len(summary.tracks)} person(s)); nothing to do"
        )
    return (
        f"{path.name}: {len(summary.tracks)} person(s): {people}; {summary.frames} frames "
        f"in {summary.seconds:.1f} s ({summary.fps:.1f} fps) -> {summary.out_dir}"
    )


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
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return guarded_main(PROG, _main, argv)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
