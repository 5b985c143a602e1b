#!/usr/bin/env bash
# The GPU path, checked in one go on a CUDA machine (issue 20), in under 8 minutes:
#   1. install (reuse a working environment; nothing is downloaded if torch is present)
#   2. the tests marked `gpu`
#   3. vidmatte-cli on the three dancers at 1080p with fp16 (timed, peak RSS, GPU memory)
#   4. the benchmarks (quick), whose pipeline rows on CUDA are 1080p and 4K
# and writes the figures to $OUT/gpu_check.md (+ .json, bench report, logs).
#
#   bash bench/gpu_check.sh                 # OUT defaults to ./gpu_check_out
#   OUT=/tmp/x SHARED=/data/shared PYTHON=python3 bash bench/gpu_check.sh
#
# SHARED: the research data/weights folder (default ../shared, then ./shared). Each step
# has its own time limit, so a slow step is reported and the rest still runs.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
T0=$(date +%s)
REPORT="$OUT/gpu_check.md"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/steps.log"; }
step() {  # step NAME SECONDS CMD...: run with a limit, log status and duration
    local name=$1 limit=$2; shift 2
    local t=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    log "$name: rc=$rc in $(( $(date +%s) - t ))s (limit ${limit}s)"
    echo "| $name | $rc | $(( $(date +%s) - t )) s |" >> "$OUT/steps.md"
    return $rc
}

if [ -z "${SHARED:-}" ]; then
    for d in ../shared ./shared; do [ -d "$d/data" ] && SHARED=$(cd "$d" && pwd) && break; done
fi
export SHARED=${SHARED:-}
[ -n "$SHARED" ] && [ ! -e ../shared ] && ln -s "$SHARED" ../shared 2>/dev/null
export VIDMATTE_BENCH_CLIPS=${VIDMATTE_BENCH_CLIPS:-$OUT/clips}
echo "| step | rc | time |" > "$OUT/steps.md"; echo "|---|---|---|" >> "$OUT/steps.md"

# 1. install ------------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    log "no CUDA torch in $PY: installing the project (pinned torch from the local index)"
    step install 240 "$PY" -m pip install -q -e '.[dev]'
fi
if ! "$PY" -c "import vidmatte.matting.pipeline" 2>/dev/null; then
    step install_project 120 "$PY" -m pip install -q --no-deps --no-build-isolation -e .
fi
"$PY" - > "$OUT/machine.json" <<'EOF'
import json, os, torch
d = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count(),
     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
print(json.dumps(d))
EOF
log "machine: $(cat "$OUT/machine.json")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1

# 2. tests marked gpu -----------------------------------------------------------
step gpu_tests 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/

# 3. the CLI at 1080p, fp16 -------------------------------------------------------
CLIP=$("$PY" -c "from bench.clips import three_dancers; print(three_dancers('1080p'))" 2> "$OUT/clip.log")
TEACHER=""
[ -n "$SHARED" ] && [ -d "$SHARED/weights" ] && TEACHER="--teacher-dir $SHARED/weights"
if [ -n "$CLIP" ]; then
    for path in default teacher; do
        [ $path = teacher ] && [ -z "$TEACHER" ] && continue
        extra=""; [ $path = teacher ] && extra=$TEACHER
        step "cli_1080p_$path" 120 /usr/bin/time -v "$PY" -m vidmatte.matting.cli "$CLIP" \
            --out "$OUT/cli_$path" --overwrite --device cuda --json $extra
    done
fi

# 4. benchmarks (quick): pipeline rows at 1080p and 4K on CUDA, GPU memory ----------
step bench 330 "$PY" -m bench.run_all --quick --out "$OUT/bench" --only pipeline network matting

# figures ------------------------------------------------------------------------
"$PY" - "$OUT" > "$REPORT" <<'EOF'
import glob, json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
print("# GPU check\n")
print("machine:", (out / "machine.json").read_text().strip(), "\n")
print((out / "steps.md").read_text())
for log in sorted(out.glob("cli_1080p_*.log")):
    t = log.read_text(errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
    fps = re.findall(r'"fps": ([0-9.]+)', t)
    print(f"- {log.stem}: wall {wall.group(1) if wall else '?'}, peak RSS "
          f"{int(rss.group(1)) / 1024:.0f} MiB" if rss else f"- {log.stem}: see log",
          f", last fps {fps[-1]}" if fps else "")
reports = sorted(glob.glob(str(out / "bench" / "bench-*.md")))
if reports:
    print("\n## benchmarks\n")
    print(Path(reports[-1]).read_text())
EOF
log "figures: $REPORT (total $(( $(date +%s) - T0 ))s)"
