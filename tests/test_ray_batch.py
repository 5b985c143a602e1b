"""Issue 22: batches on a real Ray cluster, started by the CLI on the loopback interface
(num_cpus 2, a 100 MB object store; stopped by the CLI at the end, every run bounded by a
timeout). Byte-identical to a plain local run; a killed worker's task is retried and
resumes; a bad input fails alone, with its exit code, and is not retried."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_hostile import files_under, read_frames, write_clip

from vidmatte.assets import SAMPLE_CLIP
from vidmatte.matting.cli import main

CLI = [sys.executable, "-m", "vidmatte.matting.cli"]


def test_without_ray_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    clip = write_clip(tmp_path / "a.mp4", read_frames(SAMPLE_CLIP, 2, (64, 64)))
    assert main([str(clip), "--out", str(tmp_path / "o"), "--ray"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'vidmatte[ray]'" in line
    assert not (tmp_path / "o").exists()


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the `ray` extra is not installed"
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    frames = read_frames(SAMPLE_CLIP, 24, (160, 160))
    write_clip(d / "a.mp4", frames[0:3])
    write_clip(d / "b.mp4", frames[3:6])
    write_clip(d / "c.mp4", frames[6:9])
    write_clip(d / "long.mp4", frames[:24])
    return d


def ray_cli(args: list, **kw) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(CLI + [str(a) for a in args] + ["--ray", "--ray-cpus", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **kw)  # fmt: skip


def finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, list[dict], str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)  # the driver cancels its tasks and stops its cluster
        out, err = p.communicate(timeout=60)
        raise
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return p.returncode, events, err


def final(events: list[dict]) -> dict[str, dict]:
    return {
        Path(e["input"]).name: e
        for e in events
        if e["event"] in ("done", "error") and "attempts" in e
    }


def same_manifests(a: Path, b: Path) -> None:
    ma, mb = (json.loads((x / "manifest.json").read_text()) for x in (a, b))
    for m in (ma, mb):
        m.pop("written"), m.pop("batch", None)
    assert ma == mb


@needs_ray
def test_local_cluster_is_byte_identical_and_a_bad_input_fails_alone(
    tmp_path, clips, shared_weights
):
    teacher = ["--teacher-dir", str(shared_weights)]
    good = [clips / n for n in ("a.mp4", "b.mp4", "c.mp4")]
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video\n")
    plain = tmp_path / "plain"
    assert main([*map(str, good), "--out", str(plain), "-q", *teacher]) == 0
    code, events, err = finish(ray_cli([*good, bad, "--out", tmp_path / "ray", *teacher]))
    assert code == 3, err  # the bad input's code; the others are fine
    res = final(events)
    assert res["bad.mp4"]["code"] == 3 and res["bad.mp4"]["attempts"] == 1
    assert "Traceback" not in err
    for clip in good:
        name = clip.stem
        assert res[clip.name]["code"] == 0 and res[clip.name]["attempts"] == 1
        a, b = files_under(plain / name), files_under(tmp_path / "ray" / name)
        assert a and a == b, name  # every PNG byte for byte
        same_manifests(plain / name, tmp_path / "ray" / name)
    assert not (tmp_path / "ray" / "bad").exists()
    progress = [e for e in events if e["event"] == "progress" and e.get("stage") == "batch"]
    assert progress and progress[-1]["input"] == "videos 4/4"


@needs_ray
def test_killed_worker_is_retried_and_resumes_to_identical_files(tmp_path, clips, shared_weights):
    # closed-form keeps the task running for seconds, so the kill lands mid-run (the
    # default fast matter can finish 24 small frames between two polls)
    teacher = ["--teacher-dir", str(shared_weights), "--matter", "classical"]
    long = clips / "long.mp4"
    plain = tmp_path / "plain"
    assert main([str(long), "--out", str(plain), "-q", *teacher]) == 0
    out = tmp_path / "ray"
    p = ray_cli([long, clips / "a.mp4", "--out", out, *teacher])
    lock, alpha = out / "long" / ".vidmatte.lock", out / "long" / "person_01" / "alpha"
    deadline = time.monotonic() + 400
    pid = None
    while pid is None:
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        try:
            text = lock.read_text().split()
            if len(list(alpha.glob("*.png"))) >= 3 and text:
                pid = int(text[1])  # "pid N on HOST": the worker running this task
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.05)
    assert pid != p.pid
    os.kill(pid, signal.SIGKILL)
    code, events, err = finish(p)
    assert code == 0, err
    res = final(events)["long.mp4"]
    assert res["attempts"] == 2 and res["resumed"] is True, res
    assert files_under(out / "long") == files_under(plain)
    same_manifests(out / "long", plain)


def test_probe_names_what_a_node_cannot_see(tmp_path):
    from vidmatte.matting.ray_batch import probe_storage

    marker = tmp_path / ".vidmatte-ray-x"
    marker.write_text("tok")
    assert probe_storage(str(marker), "tok", [str(marker)]) == []
    got = probe_storage(str(tmp_path / "elsewhere"), "tok", [str(tmp_path / "gone.mp4")])
    assert got[0].startswith("out:") and got[1].endswith(str(tmp_path / "gone.mp4"))


@pytest.fixture
def ray_head(tmp_path):
    """A one-node cluster started with `ray start --head --block` on loopback; stopped by
    signalling that process (which stops what it started)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    ray_bin = Path(sys.executable).parent / "ray"
    log = open(tmp_path / "head.log", "w")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--object-store-memory=100000000", "--include-dashboard=false",
         "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "--block" not in (tmp_path / "head.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, "ray start failed"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()


@needs_ray
def test_joins_a_cluster_at_an_address(tmp_path, clips, shared_weights, ray_head):
    teacher = ["--teacher-dir", str(shared_weights)]
    clip = clips / "a.mp4"
    plain = tmp_path / "plain"
    assert main([str(clip), "--out", str(plain), "-q", *teacher]) == 0
    env = {**os.environ, "RAY_ADDRESS": ray_head}  # the address as the environment gives it
    p = subprocess.Popen(CLI + [str(clip), str(clips / "b.mp4"), "--out", str(tmp_path / "r"),
                                "--ray", "--json", *teacher],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    code, events, err = finish(p)
    assert code == 0, err
    assert files_under(tmp_path / "r" / "a") == files_under(plain)
    assert set(final(events)) == {"a.mp4", "b.mp4"}
