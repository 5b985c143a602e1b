"""App parts without models: the generator worker, preview rendering, settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from vidmatte.app.preview import Layer, checkerboard, render, to_qimage  # noqa: E402
from vidmatte.app.settings import AppSettings  # noqa: E402
from vidmatte.app.workers import GeneratorWorker, error_message  # noqa: E402
from vidmatte.matting.config import PipelineConfig  # noqa: E402
from vidmatte.matting.progress import Progress  # noqa: E402
from vidmatte.models.errors import WeightsError  # noqa: E402


def _job(n, fail=None, cancel=None):
    for i in range(n):
        yield Progress(i, n, 1.0, None, 0.0)
        yield i
        if fail is not None and i == 1:
            raise fail
    return "ok"


def _record(worker):
    got = {"progress": [], "yielded": [], "returned": [], "errored": [], "aborted": 0}
    got["order"] = []  # superqt's sequence: started, ..., one outcome, finished last
    worker.started.connect(lambda: got["order"].append("started"))
    worker.progress.connect(lambda p: got["progress"].append(p.done))
    worker.yielded.connect(got["yielded"].append)
    worker.returned.connect(got["returned"].append)
    worker.returned.connect(lambda _: got["order"].append("returned"))
    worker.errored.connect(got["errored"].append)
    worker.errored.connect(lambda _: got["order"].append("errored"))
    worker.aborted.connect(lambda: got.__setitem__("aborted", got["aborted"] + 1))
    worker.aborted.connect(lambda: got["order"].append("aborted"))
    worker.finished.connect(lambda: got["order"].append("finished"))
    return got


def test_worker_synchronous_run_without_thread():
    w = GeneratorWorker(_job, 3)
    got = _record(w)
    w.run()  # headless: the same body the thread runs
    assert got["progress"] == [0, 1, 2] and got["yielded"] == [0, 1, 2]
    assert got["returned"] == ["ok"] and w.outcome == "returned"
    assert got["order"] == ["started", "returned", "finished"]


def test_worker_thread_error_and_abort(qtbot):
    w = GeneratorWorker(_job, 5, fail=WeightsError("weights missing: pass --weights"))
    got = _record(w)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        w.start()
    assert w.outcome == "errored" and got["yielded"] == [0, 1] and not got["returned"]
    assert got["order"] == ["started", "errored", "finished"]
    assert error_message(got["errored"][0]) == "weights missing: pass --weights"
    assert error_message(ValueError("boom\nmore")) == "internal error: ValueError: boom"

    def slow(cancel=None):
        import time

        for i in range(1000):
            time.sleep(0.01)
            yield i

    w2 = GeneratorWorker(slow)
    assert w2.cancel is w2._kwargs["cancel"]  # the job sees the worker's cancel event
    got2 = _record(w2)
    w2.start()
    qtbot.waitUntil(lambda: len(got2["yielded"]) >= 2, timeout=10_000)
    with qtbot.waitSignal(w2.finished, timeout=10_000):
        w2.abort()
    assert w2.outcome == "aborted" and got2["aborted"] == 1 and len(got2["yielded"]) < 1000
    assert got2["order"] == ["started", "aborted", "finished"]


def test_render_modes():
    h, w = 40, 60
    rgb = np.full((h, w, 3), 200, np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    alpha[10:30, 20:40] = 255
    trimap = np.zeros((h, w), np.uint8)
    trimap[8:32, 18:42] = 128
    trimap[10:30, 20:40] = 255
    layer = Layer(1, "a", (255, 0, 0), (20, 10, 40, 30), alpha, trimap)
    assert render(rgb, "original", [layer]) is rgb
    tri = render(rgb, "trimap", [layer])
    assert tri[20, 30, 0] > tri[20, 30, 1]  # foreground tinted red
    assert tri[0, 0, 0] < 200  # background dimmed
    np.testing.assert_array_equal(render(rgb, "alpha", [layer], selected=1)[..., 1], alpha)
    comp = render(rgb, "composite", [layer], background="colour", colour=(0, 0, 255))
    assert tuple(comp[0, 0]) == (0, 0, 255) and tuple(comp[20, 30]) == (200, 200, 200)
    photo = np.zeros((10, 30, 3), np.uint8)
    photo[..., 1] = 99
    over = render(rgb, "composite", [layer], background="image", image=photo)
    assert tuple(over[0, 0]) == (0, 99, 0)  # the image, scaled to cover the frame
    board = checkerboard(h, w)
    assert len(np.unique(board)) == 2
    qi = to_qimage(comp)
    assert (qi.width(), qi.height()) == (w, h) and qi.pixelColor(0, 0).blue() == 255
    with pytest.raises(ValueError):
        render(rgb, "nope", [])


def test_settings_round_trip(tmp_path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    model = PipelineConfig(device="cpu", min_score=0.35, teacher_dir="/x", batch_size=2)
    s = AppSettings(model=model, max_frames=6)
    for i in range(12):
        s.add_recent(f"/v/{i}.mp4")
    s.add_recent("/v/3.mp4")
    s.save(store)
    back = AppSettings.load(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert back == s and back.recent[0] == "/v/3.mp4" and len(back.recent) == 8
    store.setValue("settings/max_frames", "garbage")
    store.setValue("settings/device", "tpu")
    back = AppSettings.load(store)
    assert back.max_frames == 0 and back.model.device == "auto"  # damaged entries: defaults
    assert back.model.min_score == 0.35 and back.model.weights is None  # None survives
    # the model settings are the CLI's PipelineConfig: frozen, and the key of loaded models
    assert hash(back.model) == hash(replace(back.model)) and back.model != model
    AppSettings(recent=[]).save(store)
    assert AppSettings.load(store).recent == []
