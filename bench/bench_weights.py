"""The shipped weights against the baseline they replace, on the same frames, one run.

Rows: the teacher + dilate/erode + classical matting (the paper's "SOLO + matting"
baseline), the shipped trimap network + classical matting, and the shipped network +
shipped IndexNet — each through the real `Pipeline` on DAVIS-16 lucia and rollerblade
(854×480, ../shared/data/vos), scored with the evaluation code (training/eval/baseline.py:
J, F, TC, trimap IoU) and timed per frame (the pipeline's own work; frame 1 excluded as
warm-up). Speed is also given as a ratio to the baseline measured in this run. Quality
numbers of the student ablation (with/without the temporal loss) are in the README;
this benchmark follows whatever weights are installed.

    python -m bench.bench_weights [--quick]
"""

from __future__ import annotations

import argparse

from vidmatte.models.shared import shared_data, shared_weights
from vidmatte.models.teachers.base import find_teacher_dir
from vidmatte.models.weights.resolution import find_weights


def run(quick: bool = False) -> dict:
    from vidmatte.training.eval.baseline import default_methods, run_methods

    trimapnet = find_weights("trimapnet")
    indexnet = find_weights("indexnet")
    students = {"shipped network": trimapnet.folder} if trimapnet else {}
    teacher = find_teacher_dir(None) or shared_weights()
    methods = default_methods(teacher, students, indexnet.folder if indexnet else None)
    rows = run_methods(shared_data(), methods, max_frames=4 if quick else 12, sequences=None)
    vos = [r for r in rows if "matting" in r["method"] and "GT-alpha" not in r["method"]]
    base = {r["data"]: r["ms_per_frame"] for r in vos if r["method"].startswith("teacher ")}
    out = []
    for r in vos:
        out.append(
            {
                "data": r["data"],
                "method": r["method"],
                "J": r["J"],
                "TC": r.get("TC", float("nan")),
                "trimap_IoU": r["trimap_IoU"],
                "fps": 1e3 / r["ms_per_frame"],
                "p50_ms": r["ms_p50"],
                "p99_ms": r["ms_p99"],
                "speed_vs_baseline": base[r["data"]] / r["ms_per_frame"],
            }
        )
    return {"rows": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    res = run(p.parse_args().quick)
    print("data | method | J | TC % | trimap IoU | fps | p50 ms | p99 ms | × baseline speed")
    for r in res["rows"]:
        print(
            f"{r['data']} | {r['method']} | {r['J']:.3f} | {r['TC']:.1f} | "
            f"{r['trimap_IoU']:.3f} | {r['fps']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['speed_vs_baseline']:.2f}"
        )


if __name__ == "__main__":
    main()
