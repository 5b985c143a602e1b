"""Offline teacher cost per frame at 720p, with 1 and 3 people (CPU, the product default).

Frames: sam2_juggle_single_person (1280×720, one person) and maggie_three_dancers
(1280×720, three people, limbs overlapping) from ../shared/data; teacher files from
$VIDMATTE_TEACHER_DIR or ../shared/weights. Reports per-frame p50/p99 of the whole teacher,
of the detector alone, and of the per-person segmentation + overlap step (the rest), plus
the trimaps from the masks; baseline in the same run: one segmentation pass per person
(MANIFEST "V1" without the landmark-centred second pass) and TTA (flip × 2 scales).

    python -m bench.bench_teacher [--quick]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from vidmatte.matting.io.video import open_video
from vidmatte.models.shared import shared_data, shared_weights
from vidmatte.models.teachers.base import find_teacher_dir, load_teacher
from vidmatte.models.teachers.tta import TTATeacher
from vidmatte.models.trimap import masks_to_trimaps

CLIPS = {1: "sam2_juggle_single_person.mp4", 3: "maggie_three_dancers.mp4"}


def _frames(name: str, n: int, step: int = 7) -> list[np.ndarray]:
    out = []
    with open_video(shared_data() / "videos" / name) as r:
        for f in r:
            if f.index % step == 0:
                out.append(f.rgb)
            if len(out) == n:
                break
    return out


def _time(fn, frames, repeat: int = 1) -> tuple[float, float, list]:
    ts, outs = [], []
    for _ in range(repeat):
        for f in frames:
            t0 = time.perf_counter()
            outs.append(fn(f))
            ts.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 99)), outs


def _cpu_ms(fn, frames) -> float:
    """Process CPU time per frame (all threads): a load-independent cost figure where
    the machine is shared (wall time then grows with the other processes)."""
    t0 = time.process_time()
    for f in frames:
        fn(f)
    return (time.process_time() - t0) * 1000 / len(frames)


def run(quick: bool = False) -> dict:
    folder = find_teacher_dir() or shared_weights()
    teacher = load_teacher(folder)
    n = 4 if quick else 12
    rows = []
    for people, clip in CLIPS.items():
        frames = _frames(clip, n)
        teacher(frames[0])  # warm-up
        p50, p99, outs = _time(teacher, frames)
        found = float(np.mean([len(o) for o in outs]))
        cpu = _cpu_ms(teacher, frames)
        d50, d99, _ = _time(teacher.detect, frames)
        tri50, _, _ = _time(lambda o: masks_to_trimaps(o.masks.numpy()), outs)
        teacher.segmenter.two_pass = False
        v1, _, _ = _time(teacher, frames)
        teacher.segmenter.two_pass = True
        tta50, _, _ = _time(TTATeacher(teacher), frames[: max(2, n // 4)])
        rows.append(
            {
                "people": people,
                "clip": clip,
                "persons_found": found,
                "teacher_ms_p50": p50,
                "teacher_ms_p99": p99,
                "fps": 1000 / p50,
                "teacher_cpu_ms": cpu,
                "detector_ms_p50": d50,
                "segment_overlap_ms_p50": p50 - d50,
                "trimaps_ms_p50": tri50,
                "one_pass_ms_p50": v1,
                "tta_ms_p50": tta50,
                "ratio_v3_over_one_pass": p50 / v1,
            }
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "peak_rss_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    res = run(quick=ap.parse_args().quick)
    print(
        "people  found  teacher p50/p99 ms   fps   cpu ms  detector  seg+overlap  trimaps  "
        "1-pass  TTA"
    )
    for r in res["rows"]:
        print(
            f"{r['people']:>6}  {r['persons_found']:5.1f}  {r['teacher_ms_p50']:7.1f} / "
            f"{r['teacher_ms_p99']:7.1f}  {r['fps']:5.1f}  {r['teacher_cpu_ms']:6.1f}  "
            f"{r['detector_ms_p50']:8.1f}  "
            f"{r['segment_overlap_ms_p50']:11.1f}  {r['trimaps_ms_p50']:7.1f}  "
            f"{r['one_pass_ms_p50']:6.1f}  {r['tta_ms_p50']:6.1f}"
        )
    print(f"peak RSS {res['peak_rss_mb']:.0f} MB (1280×720 frames, CPU)")


if __name__ == "__main__":
    main()
