"""Run every benchmark: `python -m bench.run_all [--quick] [--out DIR]`.

Imports each bench/bench_*.py, calls its `run(quick) -> dict`, and writes one JSON and one
Markdown report (machine, torch version, device, each benchmark's table). A benchmark
that fails is recorded with its error and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # the machine may be shared: compare ratios measured in the same run
        "loadavg_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = f"cuda: {torch.cuda.get_device_name(0)}"
        else:
            info["device"] = "cpu"
    except Exception as e:  # torch missing or broken: still report the rest
        info["torch"] = f"unavailable ({e})"
        info["device"] = "cpu"
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except Exception:
        pass
    return info


def run_one(name: str, quick: bool) -> dict:
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(f"bench.{name}")
        result = mod.run(quick=quick)
        status = {"status": "ok", "result": result}
    except Exception as e:
        status = {
            "status": "error",
            "error": f"{type(e).__name__}: {e}".splitlines()[0],
            "traceback": traceback.format_exc(limit=5),
        }
    status["seconds"] = round(time.perf_counter() - t0, 2)
    return status


def _cell(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _tables_of(result) -> list[tuple[str, list[dict]]]:
    """A benchmark's tables: every list of dicts in its result (rows first), a list of
    dicts, or a flat dict as one row."""
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        return [("", result)]
    if not isinstance(result, dict):
        return []
    tables = [
        (k, v)
        for k, v in result.items()
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
    ]
    tables.sort(key=lambda kv: kv[0] != "rows")
    flat = {k: v for k, v in result.items() if isinstance(v, int | float | str | bool)}
    if flat:
        tables.append(("", [flat]))
    return tables


def table(rows: list[dict]) -> list[str]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]


def markdown(report: dict) -> str:
    lines = [f"# vidmatte benchmarks ({report['started']})", ""]
    lines += ["| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["machine"].items()]
    lines.append(f"| quick | {report['quick']} |")
    for name, res in report["benchmarks"].items():
        lines += ["", f"## {name} ({res['status']}, {res['seconds']} s)", ""]
        if res["status"] != "ok":
            lines.append(f"**error:** `{res['error']}`")
            continue
        tables = _tables_of(res["result"])
        if not tables:
            lines.append("```\n" + json.dumps(res["result"], indent=1, default=str) + "\n```")
            continue
        for title, rows in tables:
            if title and title != "rows":
                lines += ["", f"**{title}**", ""]
            lines += table(rows)
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    from vidmatte.matting.io.atomic import atomic_write_text, make_dirs

    make_dirs(path.parent)
    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small inputs, few repeats")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="report folder")
    p.add_argument("--only", nargs="*", metavar="NAME", help="run only these bench_* modules")
    args = p.parse_args(argv)
    if str(BENCH_DIR.parent) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR.parent))
    names = discover()
    if args.only:
        names = [n for n in names if n in args.only or n.removeprefix("bench_") in args.only]
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "benchmarks": {},
    }
    for name in names:
        print(f"== {name}", flush=True)
        res = run_one(name, args.quick)
        report["benchmarks"][name] = res
        print(
            f"   {res['status']} in {res['seconds']} s"
            + (f": {res['error']}" if res["status"] != "ok" else ""),
            flush=True,
        )
    stamp = report["started"].replace(":", "").replace("-", "")[:15]
    jpath, mpath = args.out / f"bench-{stamp}.json", args.out / f"bench-{stamp}.md"
    from vidmatte.matting.io.manifest import json_safe

    _write(jpath, json.dumps(json_safe(report), indent=2, default=str) + "\n")
    _write(mpath, markdown(report))
    print(f"wrote {jpath} and {mpath}")
    failed = [n for n, r in report["benchmarks"].items() if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
