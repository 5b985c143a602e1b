"""Issue 18's release decision from a validation report (training/eval/validation_report.py
check_targets): which targets hold decides whether a student becomes the default, replaces
the shipped fallback only, or ships nothing."""

from __future__ import annotations

import copy

from vidmatte.training.eval.validation_report import check_targets, markdown_targets

T, S, P = "per-frame teacher", "YOLOX student", "shipped student"


def _report(student_j=(0.80, 0.70), student_tc=(95.0, 90.0), merged=0, found=9) -> dict:
    vos = []
    for i, seq in enumerate(("davis16_lucia", "davis16_rollerblade")):
        vos.append({"data": seq, "method": T, "J": 0.75 - 0.1 * i, "TC": 94.0 - 5 * i})
        vos.append({"data": seq, "method": P, "J": 0.60 - 0.2 * i, "TC": 91.0 - 10 * i})
        vos.append({"data": seq, "method": S, "J": student_j[i], "TC": student_tc[i]})
    inst = []
    for name, people in (("davis17_testdev_tackle", 3), ("aot_vspw_market_crowd_1", 10)):
        inst.append({"data": name, "method": T, "people": people, "found": people - 1,
                     "merged": 0})  # fmt: skip
        inst.append({"data": name, "method": P, "people": people, "found": 2, "merged": 2})
        got = found if "vspw" in name else people
        inst.append({"data": name, "method": S, "people": people, "found": got,
                     "merged": merged})  # fmt: skip
    return {"vos": vos, "multi_person": [], "instances": inst}


TIMING = [
    {"method": T, "threads": 2, "ms": 500.0},
    {"method": S, "threads": 1, "ms": 80.0},
    {"method": S, "threads": 2, "ms": 55.0},
]


def test_every_target_holds_means_default():
    res = check_targets(_report(), TIMING, S, shipped=P)
    assert [t["holds"] for t in res["targets"]] == [True] * 5
    assert res["decision"] == "default" and res["beats_shipped"] is True
    assert "| yes |" in markdown_targets(res)


def test_one_failed_target_means_fallback_or_none():
    # J margin missed on rollerblade (0.62 < 0.65 + 0.03): better than the shipped student
    res = check_targets(_report(student_j=(0.80, 0.62)), TIMING, S, shipped=P)
    assert not res["targets"][0]["holds"] and "0.620 vs 0.650" in res["targets"][0]["detail"]
    assert res["decision"] == "fallback"
    # too slow at 2 threads
    slow = copy.deepcopy(TIMING)
    slow[2]["ms"] = 61.0
    assert check_targets(_report(), slow, S, shipped=P)["decision"] == "fallback"
    # crowd recall 7/10 < 0.8
    res = check_targets(_report(found=7), TIMING, S, shipped=P)
    assert not res["targets"][3]["holds"] and res["decision"] == "fallback"
    # worse than the shipped student on J: nothing ships
    res = check_targets(_report(student_j=(0.5, 0.3)), TIMING, S, shipped=P)
    assert res["beats_shipped"] is False and res["decision"] == "none"


def test_merged_people_and_lower_tc_fail():
    res = check_targets(_report(student_tc=(95.0, 88.0), merged=1), TIMING, S, shipped=P)
    holds = {t["target"].split(" ")[0]: t["holds"] for t in res["targets"]}
    assert holds["TC"] is False and holds["no"] is False
    assert res["decision"] == "fallback"  # still above the shipped student on every count
