"""Regenerate the README's speed and memory tables from a `make bench` report.

    python -m bench.readme [REPORT.json]      # default: the newest bench_results/bench-*.json

Replaces what lies between `<!-- bench:pipeline -->` and `<!-- /bench:pipeline -->` in
README.md with the pipeline benchmark's tables (stages alone and end to end, memory, the
issue-20 targets) and the machine they were measured on, so the README never shows a
figure that no report contains.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:pipeline -->", "<!-- /bench:pipeline -->"


def _f(v, digits=2) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render(report: dict) -> str:
    m = report["machine"]
    res = report["benchmarks"].get("bench_pipeline", {})
    if res.get("status") != "ok":
        return f"(bench_pipeline did not run: {res.get('error', 'missing')})"
    r = res["result"]
    lines = [
        f"Measured {report['started']} by `make bench`{' --quick' if report['quick'] else ''}"
        f" on {m.get('device', 'cpu')}, {m.get('cpu_count')} CPUs, torch {m.get('torch')}; "
        f"load average at start {m.get('loadavg_at_start', '?')} (a shared machine: compare "
        "ratios within a row, not fps across rows).",
        "",
        "| path | clip | people | decode | instances | association | matting | encode "
        "| end to end | ÷ slowest | latency p50 / p99 | p99/p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['path']} | {row['clip']} | {row['persons']} | {row['decode_fps']:.1f} "
            f"| {row['instances_fps']:.2f} | {row['association_fps']:.1f} "
            f"| {row['matting_fps']:.2f} | {row['encode_fps']:.1f} | **{row['e2e_fps']:.2f}** "
            f"| {row['e2e_vs_slowest']:.2f} ({row['slowest']}) "
            f"| {row['latency_ms_p50']:.0f} / {row['latency_ms_p99']:.0f} ms "
            f"| {row['latency_p99_p50']:.2f} |"
            + (f" GPU {row['gpu_mem_mib']:.0f} MiB" if "gpu_mem_mib" in row else "")
        )
    paths = {row["path"]: row["summary"] for row in r["rows"]}
    lines += [""] + [f"- {k}: {v}" for k, v in paths.items()]
    if r.get("memory"):
        lines += ["", "| path | input | frames | peak RSS |", "|---|---|---|---|"]
        lines += [
            f"| {x['path']} | {x['what']} | {x['frames']} | {x['peak_mib']:.0f} MiB |"
            for x in r["memory"]
        ]
    if r.get("targets"):
        lines += ["", "| path | target | measured | limit | holds |", "|---|---|---|---|---|"]
        lines += [
            f"| {t['path']} | {t['target']} | {_f(t['value'])} | {t['limit']} "
            f"| {'yes' if t['holds'] else '**no**'} |"
            for t in r["targets"]
        ]
    return "\n".join(lines)


def update(readme: Path, block: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{block}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        path = Path(args[0])
    else:
        found = sorted((ROOT / "bench_results").glob("bench-*.json"))
        if not found:
            raise SystemExit("no bench_results/bench-*.json: run `make bench` first")
        path = found[-1]
    update(ROOT / "README.md", render(json.loads(path.read_text())))
    print(f"README.md: tables from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
