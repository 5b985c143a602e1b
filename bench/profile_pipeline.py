"""Where the default path spends its time: py-spy over the whole CLI, torch.profiler over
the network's operators. Writes a Markdown summary (README, "Speed and memory").

    python -m bench.profile_pipeline [--frames 12] [--teacher-dir DIR] [--out FILE]
                                     [--pythonpath DIR]   # profile another checkout

py-spy samples every thread of a child `vidmatte-cli` run (no idle samples), so each
stage thread's share and the functions it runs show where the time goes, native code
included in its Python caller; torch.profiler lists the operators of `source.detect` on
the same frames (the instance network's own time). `--pythonpath` runs the child against
another tree (e.g. a worktree of an older commit) for before/after tables.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: functions that only pass work along; the first frame below them is reported instead
_PLUMBING = re.compile(r"^(_bootstrap|_bootstrap_inner|run|_worker|_guard|<module>|main|_run)")


def _py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    return exe


def sample(clip: Path, frames: int, teacher_dir: str | None, rate: int, pythonpath=None):
    """Run the CLI under py-spy; return {stack tuple: samples} with thread names first."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        cmd = [_py_spy(), "record", "--threads", "--format", "raw", "--rate", str(rate)]
        cmd += ["-o", str(raw), "--", sys.executable, "-m", "vidmatte.matting.cli", str(clip)]
        cmd += ["--out", f"{tmp}/o", "--quiet", "--end", str(frames)]
        if teacher_dir:
            cmd += ["--teacher-dir", teacher_dir]
        env = dict(os.environ)
        cwd = ROOT
        if pythonpath:
            env["PYTHONPATH"] = str(pythonpath)
        subprocess.run(cmd, check=True, env=env, cwd=cwd, capture_output=True)
        stacks = collections.Counter()
        for line in raw.read_text().splitlines():
            body, _, count = line.rpartition(" ")
            if body and count.isdigit():
                stacks[tuple(body.split(";"))] += int(count)
    return stacks


def _thread(frame0: str) -> str:
    m = re.match(r"thread \(\d+\)(?::\s*(.*))?", frame0)
    name = (m.group(1) if m else None) or "main"
    name = re.sub(r"_\d+$", "", name)  # pool threads: vidmatte-matte_0 -> vidmatte-matte
    return re.sub(r"^ThreadPoolExecutor-\d+", "pool", name)


def _fn(frame: str) -> str:
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    return f"{m.group(1)} ({Path(m.group(2)).name})"


def summarise(stacks: collections.Counter, top: int = 12) -> dict:
    total = sum(stacks.values())
    threads = collections.Counter()
    leaves = collections.Counter()
    ours = collections.Counter()  # deepest vidmatte frame of each sample
    for st, n in stacks.items():
        threads[_thread(st[0])] += n
        leaves[_fn(st[-1])] += n
        mine = [f for f in st[1:] if "/vidmatte/" in f or re.search(r"\((models|matting)/", f)]
        mine = [f for f in mine if not _PLUMBING.match(f)]
        ours[_fn(mine[-1]) if mine else _fn(st[-1])] += n
    return {
        "samples": total,
        "threads": [(k, v / total) for k, v in threads.most_common()],
        "leaves": [(k, v / total) for k, v in leaves.most_common(top)],
        "ours": [(k, v / total) for k, v in ours.most_common(top)],
    }


def torch_ops(clip: Path, frames: int, teacher_dir: str | None, top: int = 10) -> list:
    """(operator, self ms per frame, share) of the instance source on the first frames."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from vidmatte.matting.config import PipelineConfig
    from vidmatte.matting.io.video import open_video
    from vidmatte.matting.pipeline import Pipeline

    pipe = Pipeline(PipelineConfig(teacher_dir=teacher_dir))
    with open_video(clip) as r:
        rgbs = [f.rgb for f in r.frames(0, frames)]
    pipe.source.detect(rgbs[:1], select=pipe.select())  # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        for rgb in rgbs:
            pipe.source.detect([rgb], select=pipe.select())
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [
        (e.key, e.self_cpu_time_total / 1e3 / len(rgbs), e.self_cpu_time_total / total)
        for e in rows[:top]
    ]


def markdown(title: str, s: dict, ops: list | None) -> str:
    lines = [f"### {title}", "", f"py-spy, {s['samples']} samples (active threads only)", ""]
    lines += ["| thread | share |", "|---|---|"]
    lines += [f"| {k} | {v:.0%} |" for k, v in s["threads"]]
    lines += ["", "| deepest vidmatte function | share |", "|---|---|"]
    lines += [f"| `{k}` | {v:.0%} |" for k, v in s["ours"]]
    lines += ["", "| leaf function | share |", "|---|---|"]
    lines += [f"| `{k}` | {v:.0%} |" for k, v in s["leaves"]]
    if ops:
        lines += ["", "torch.profiler, instance source only", ""]
        lines += ["| operator | self ms / frame | share |", "|---|---|---|"]
        lines += [f"| `{k}` | {ms:.1f} | {sh:.0%} |" for k, ms, sh in ops]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.clips import three_dancers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="720p", choices=("720p", "1080p", "2160p"))
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--teacher-dir", help="profile the teacher path")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    p.add_argument("--pythonpath", help="PYTHONPATH of the profiled child (another tree)")
    p.add_argument("--title", default=None)
    p.add_argument("--no-torch", action="store_true", help="skip torch.profiler")
    p.add_argument("--out", type=Path, help="append the Markdown here (default: stdout)")
    args = p.parse_args(argv)
    clip = three_dancers(args.size)
    stacks = sample(clip, args.frames, args.teacher_dir, args.rate, args.pythonpath)
    ops = None
    if not args.no_torch and not args.pythonpath:
        ops = torch_ops(clip, min(args.frames, 6), args.teacher_dir)
    path = "teacher" if args.teacher_dir else "default"
    title = args.title or f"{path} path, three dancers {args.size}, {args.frames} frames"
    text = markdown(title, summarise(stacks), ops)
    if args.out:
        with args.out.open("a") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
