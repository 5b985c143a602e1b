"""Issue 23: nothing lost under hostile use. One end-to-end test per case, on real small
inputs (the sample clip's astronaut at 192x192 and the three dancers at 320x180), through
the real CLI (in-process where a call suffices, a subprocess for signals, concurrency and
mounts). Read-only and full disks are real tmpfs mounts in a user namespace (`unshare`);
those tests skip where the kernel refuses one."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidmatte.assets import SAMPLE_CLIP
from vidmatte.matting.cli import main

CLI = [sys.executable, "-m", "vidmatte.matting.cli"]
FPS = 25


def write_clip(path: Path, frames: list[np.ndarray], *, audio_s: float = 0.0, gop: int = 0):
    """H.264 clip at 25 fps (+ a 440 Hz AAC tone of `audio_s` seconds)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        opts = {"g": str(gop)} if gop else {}
        s = c.add_stream("libx264", rate=FPS, options=opts)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        a = None
        if audio_s:
            a = c.add_stream("aac", rate=48000)
            a.layout = "mono"
        for img in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
        if a is not None:
            n = int(audio_s * 48000)
            for start in range(0, n, 1024):
                t = np.arange(start, min(n, start + 1024)) / 48000
                chunk = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                c.mux(a.encode(af))
            c.mux(a.encode())
    return path


def read_frames(src: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    out = []
    with av.open(str(src)) as c:
        for f in c.decode(video=0):
            if len(out) >= n:
                break
            out.append(cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA))
    return out


@pytest.fixture(scope="module")
def astro(tmp_path_factory) -> Path:
    """12 frames of the astronaut at 192x192 with 0.48 s of audio."""
    d = tmp_path_factory.mktemp("astro")
    return write_clip(d / "astro.mp4", read_frames(SAMPLE_CLIP, 12, (192, 192)), audio_s=12 / FPS)


@pytest.fixture(scope="module")
def dancers_frames(videos_dir) -> list[np.ndarray]:
    return read_frames(videos_dir / "maggie_three_dancers.mp4", 24, (320, 180))


@pytest.fixture
def teacher(shared_weights) -> list[str]:
    return ["--teacher-dir", str(shared_weights)]


def cli(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          timeout=600, **kw)  # fmt: skip


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


#: Tests that signal or race a running export keep it busy with the closed-form matter:
#: the default fast matter can finish a short clip before the signal lands.
SLOW_MATTER = ["--matter", "classical"]


def temps_under(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if ".tmp-" in p.name]


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ": error:" in ln]


# ------------------------------------------------------------------ 1. folder lock


def test_1_second_writer_is_refused_while_a_run_holds_the_folder(tmp_path, teacher):
    long = write_clip(tmp_path / "long.mp4", read_frames(SAMPLE_CLIP, 60, (192, 192)))
    out = tmp_path / "out"
    # The closed-form matter keeps run A busy for seconds (the default fast matter would
    # finish this clip before B starts); B uses the same settings, so only the lock differs.
    slow = [*SLOW_MATTER, *teacher]
    a = subprocess.Popen(CLI + [str(long), "--out", str(out), "--overwrite", "-q", *slow],
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (out / "manifest.json").is_file():
            assert a.poll() is None, a.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A is running: another --overwrite and a --resume are both refused at once.
        others = {
            flag: subprocess.Popen(
                CLI + [str(long), "--out", str(out), flag, *slow],
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for flag in ("--overwrite", "--resume")
        }
        for flag, b in others.items():
            assert b.wait(timeout=300) == 6, flag
            (line,) = error_lines(b.stderr.read())
            assert "in use" in line and f"pid {a.pid}" in line, line
        assert a.poll() is None, "A should still be running (make the clip longer)"
    finally:
        rc = a.wait(timeout=900)
    assert rc == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["complete"] is True
    (track,) = man["tracks"]
    names = sorted(p.name for p in (out / track["alpha"]).iterdir())
    assert names == [f"{i:06d}.png" for i in range(track["first"], track["last"] + 1)]
    assert not (out / ".vidmatte.lock").exists()


# ------------------------------------------------------------------ 2. same-name inputs


def test_2_same_file_names_in_different_folders_get_their_own_folders(
    tmp_path, astro, teacher, capsys
):
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        shutil.copy(astro, tmp_path / d / "x.mp4")
    out = tmp_path / "out"
    args = [str(tmp_path / "d1" / "x.mp4"), str(tmp_path / "d2" / "x.mp4"), "--out", str(out)]
    assert main([*args, "--end", "3", "-q", *teacher]) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["d1_x", "d2_x"]
    for d in ("d1", "d2"):
        man = json.loads((out / f"{d}_x" / "manifest.json").read_text())
        assert man["source"]["path"] == str(tmp_path / d / "x.mp4")
        assert man["complete"] and man["tracks"]


# ------------------------------------------------------------------ 3. resume of a finished range export


@pytest.mark.parametrize("fmt", ["prores", "webm", "ffv1"])
def test_3_resume_keeps_a_finished_container_export_with_a_range(tmp_path, astro, teacher, fmt):
    out = tmp_path / "out"
    args = [str(astro), "--out", str(out), "--format", fmt, "--start", "2", "--end", "5", "-q"]
    assert main([*args, *teacher]) == 0
    before = json.loads((out / "manifest.json").read_text())
    data = files_under(out)
    assert main([*args, *teacher, "--resume"]) == 0
    after = json.loads((out / "manifest.json").read_text())
    assert after["complete"] is True and after["tracks"] == before["tracks"]
    assert after["range"] == before["range"] == {"start": 2, "end": 5}
    assert files_under(out) == data


# ------------------------------------------------------------------ 4. resume checks what it continues


def test_4_resume_refuses_other_settings_or_input_and_overwrite_cleans(
    tmp_path, astro, teacher, capsys
):
    out = tmp_path / "out"
    base = ["--out", str(out), "--end", "3", "-q", *teacher]
    assert main([str(astro), *base]) == 0
    man = json.loads((out / "manifest.json").read_text())
    man["complete"] = False  # as if interrupted
    (out / "manifest.json").write_text(json.dumps(man))
    frames = sorted((out / "person_01" / "alpha").glob("*.png"))
    frames[-1].unlink()
    capsys.readouterr()
    other = tmp_path / "other.mp4"
    write_clip(other, read_frames(SAMPLE_CLIP, 4, (192, 192))[::-1])
    for extra, what in (
        (["--min-score", "0.7"], "min_score"),
        (["--format", "ffv1"], "format"),
        (["--save-trimaps"], "save_trimaps"),
    ):
        assert main([str(astro), *base, "--resume", *extra]) == 6, extra
        err = capsys.readouterr().err
        assert what in err and "--overwrite" in err, err
    assert main([str(other), *base, "--resume"]) == 6
    assert "input" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text()) == man  # nothing touched
    # --overwrite with another format removes what the old settings wrote
    assert main([str(astro), *base, "--overwrite", "--format", "ffv1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "person_01.mkv"]


# ------------------------------------------------------------------ 5. damaged file with a range


def test_5_damaged_file_with_a_range(tmp_path, dancers_frames, teacher, capsys):
    from vidmatte.matting.io.video import open_video

    clip = write_clip(tmp_path / "dancers.mp4", dancers_frames, gop=6)
    with av.open(str(clip)) as c:
        packets = sorted((p.pts, p.pos, p.size) for p in c.demux(video=0) if p.size)
    data = bytearray(clip.read_bytes())
    _, pos, size = packets[13]  # a P-frame inside the range
    data[pos + 8 : pos + size] = bytes((7 * i + 3) % 256 for i in range(size - 8))
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    with open_video(bad) as r:
        full = {f.index: f.rgb for f in r.frames()}
    with open_video(bad) as r:
        part = {f.index: f.rgb for f in r.frames(10, 20)}
        assert r.warnings and "damaged" in r.warnings[0]
    expected = sorted(i for i in full if 10 <= i < 20)
    assert sorted(part) == expected and len(expected) >= 5
    for i in expected:  # each frame keeps its own index (and pixels) whatever the damage
        np.testing.assert_array_equal(part[i], full[i])
    capsys.readouterr()
    out = tmp_path / "out"
    assert main([str(bad), "--out", str(out), "--start", "10", "--end", "20", *teacher]) == 0
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "warning:" in ln and "damaged:" in ln]) == 1, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["range"]["start"] >= 10 and man["range"]["end"] <= 20
    assert len(man["tracks"]) == 3


# ------------------------------------------------------------------ 6. options checked first


def test_6_bad_composite_is_refused_before_any_output(tmp_path, astro, teacher, capsys):
    out = tmp_path / "out"
    base = [str(astro), "--out", str(out), "--end", "3", "-q", *teacher]
    for bad in (str(tmp_path / "missing.png"), "#12345g", "300,0,0"):
        assert main([*base, "--composite", bad]) == 2, bad
        assert not out.exists(), bad
        assert "--composite" in capsys.readouterr().err
    (tmp_path / "bg.png").write_bytes(b"\x89PNG not really")
    assert main([*base, "--composite", str(tmp_path / "bg.png")]) == 2
    assert not out.exists()
    # pre-checks that fail on the output leave no empty folder behind either
    assert main([str(tmp_path / "missing.mp4"), "--out", str(out), *teacher]) == 3
    assert not out.exists()
    assert main([*base, "--composite", "green"]) == 0  # the corrected rerun just works
    assert (out / "composite.mp4").is_file()


# ------------------------------------------------------------------ 7. score range


@pytest.mark.parametrize("score", ["2", "-1", "nan", "inf"])
def test_7_min_score_outside_0_1_is_a_usage_error(tmp_path, astro, teacher, score, capsys):
    out = tmp_path / "o"
    assert main([str(astro), "--out", str(out), "--end", "1", "--min-score", score, *teacher]) == 2
    assert "--min-score" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ 8 and 9. SIGTERM; bitexact


@pytest.fixture(scope="module")
def ffv1_reference(tmp_path_factory, astro, shared_weights) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    r = cli([astro, "--out", out, "--format", "ffv1", "--composite", "green", "-q",
             *SLOW_MATTER, "--teacher-dir", shared_weights])  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_8_sigterm_stops_cleanly_and_resume_finishes(tmp_path, astro, teacher, ffv1_reference):
    out = tmp_path / "out"
    args = [str(astro), "--out", str(out), "--format", "ffv1", "--composite", "green", "-q",
            *SLOW_MATTER]  # fmt: skip
    p = subprocess.Popen(CLI + args + teacher, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out.exists() and any(".mkv.tmp-" in t for t in temps_under(out))):
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=120)
    err = p.stderr.read()
    assert rc == 143, err
    assert "Traceback" not in err and "--resume" in err
    assert temps_under(out) == []
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
    r = cli(args + teacher + ["--resume"])
    assert r.returncode == 0, r.stderr
    assert files_under(out) == files_under(ffv1_reference)  # 9: byte for byte


def test_9_containers_are_byte_identical_run_to_run(tmp_path, astro, teacher, ffv1_reference):
    out = tmp_path / "again"
    assert main([str(astro), "--out", str(out), "--format", "ffv1", "--composite", "green",
                 "-q", *SLOW_MATTER, *teacher]) == 0  # fmt: skip
    a, b = files_under(ffv1_reference), files_under(out)
    assert sorted(a) == sorted(b) == ["composite.mp4", "person_01.mkv"]
    for name in a:
        assert a[name] == b[name], name


# ------------------------------------------------------------------ 10. messages


def test_10a_persons_that_do_not_exist_name_the_ones_that_do(tmp_path, astro, teacher, capsys):
    code = main([str(astro), "--out", str(tmp_path / "o"), "--end", "3", "--persons", "99",
                 *teacher])  # fmt: skip
    assert code == 4
    (line,) = error_lines(capsys.readouterr().err)
    assert "99" in line and "found: 1" in line and "no person found" not in line, line


def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m none /mnt"],
                       capture_output=True)  # fmt: skip
    return r.returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_ok(), reason="no user-namespace tmpfs mounts")


def in_mount(mnt: Path, opts: str, args: list) -> subprocess.CompletedProcess:
    mnt.mkdir(exist_ok=True)
    line = " ".join(f"'{a}'" for a in [*CLI, *map(str, args)])
    script = f"mount -t tmpfs -o {opts} none '{mnt}' && exec {line}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def _mb(text: str) -> list[float]:
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
    return [float(v) * scale[u] for v, u in re.findall(r"(\d+(?:\.\d+)?) (B|KB|MB|GB)\b", text)]


@needs_mounts
def test_10b_free_space_message_states_the_real_requirement(tmp_path, astro, teacher):
    small = in_mount(tmp_path / "m", "size=4m", [astro, "--out", tmp_path / "m" / "o", *teacher])
    assert small.returncode == 6, small.stderr
    (line,) = error_lines(small.stderr)
    numbers = _mb(line)
    needed, free = numbers[0], numbers[-1]
    assert needed > free, line  # the refusal is consistent with its own numbers
    ok = in_mount(tmp_path / "m", "size=48m",
                  [astro, "--out", tmp_path / "m" / "o", "--end", "3", "-q", *teacher])  # fmt: skip
    assert ok.returncode == 0, ok.stderr  # a 48 MB disk holds a 3-frame export


@needs_mounts
def test_10c_read_only_mount_is_not_a_space_problem(tmp_path, astro, teacher):
    r = in_mount(tmp_path / "m", "ro,size=1m", [astro, "--out", tmp_path / "m" / "o", *teacher])
    assert r.returncode == 6
    (line,) = error_lines(r.stderr)
    assert "read-only" in line and "space" not in line, line


def test_10d_truncation_is_reported_once(tmp_path, teacher):
    mkv = write_clip(tmp_path / "full.mkv", read_frames(SAMPLE_CLIP, 8, (192, 192)))
    with av.open(str(mkv)) as c:  # Matroska: a cut copy still opens (no index at the end)
        pos = sorted(p.pos for p in c.demux(video=0) if p.size)[5]
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv.read_bytes()[:pos])
    r = cli([cut, "--out", tmp_path / "o", *teacher])
    assert r.returncode in (0, 4), r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "truncated" in ln]
    assert len(lines) == 1, r.stderr
    assert "Warning" not in r.stderr and ".py" not in r.stderr


def test_10e_messages_name_the_flag(tmp_path, astro):
    from vidmatte.matting.io.alpha import open_alpha_writer
    from vidmatte.matting.io.composite import open_composite_writer
    from vidmatte.matting.io.video import open_video
    from vidmatte.models.errors import OutputError

    with open_video(astro) as r:
        info, f0 = r.info, r.read(0)
    for fmt in ("ffv1", "png"):
        with open_alpha_writer(fmt, tmp_path, "person_01", info) as w:
            w.write(0, np.zeros((info.height, info.width), np.uint8))
        with pytest.raises(OutputError, match="--overwrite"):
            open_alpha_writer(fmt, tmp_path, "person_01", info)
    with open_composite_writer(tmp_path / "c.mp4", info, "green", audio_from=None) as cw:
        cw.write(f0, np.zeros((info.height, info.width), np.uint8))
    with pytest.raises(OutputError, match="--overwrite"):
        open_composite_writer(tmp_path / "c.mp4", info, "green", audio_from=None)


def test_10f_empty_shard_says_so(tmp_path, astro, capsys):
    code = main([str(astro), str(astro), "--out", str(tmp_path / "o"), "--shard", "3/3"])
    err = capsys.readouterr().err
    assert code == 0 and "shard 3/3" in err and "no input" in err, err
    assert not (tmp_path / "o").exists()


def test_10g_symlink_loop_is_named(tmp_path, teacher, capsys):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    assert main([str(loop), "--out", str(tmp_path / "o"), *teacher]) == 3
    (line,) = error_lines(capsys.readouterr().err)
    assert "symlink loop" in line and "no such file" not in line


# ------------------------------------------------------------------ 11. composite audio


def test_11_composite_audio_is_cut_to_the_range(tmp_path, astro, teacher):
    out = tmp_path / "out"
    code = main([str(astro), "--out", str(out), "--start", "4", "--end", "10", "--composite",
                 "green", "-q", *teacher])  # fmt: skip
    assert code == 0
    with av.open(str(out / "composite.mp4")) as c:
        v = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        c.seek(0)
        a = list(c.decode(audio=0))
    assert len(v) == 6 and v[0] == pytest.approx(4 / FPS, abs=1e-3)
    a0 = float(a[0].pts * a[0].time_base)
    a1 = float(a[-1].pts * a[-1].time_base) + a[-1].samples / a[-1].sample_rate
    assert a0 == pytest.approx(v[0], abs=0.03)  # one AAC frame is 21 ms
    assert a1 == pytest.approx(10 / FPS, abs=0.03)
