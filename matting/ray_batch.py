"""Batches on a Ray cluster (`vidmatte-cli INPUTS... --out DIR --ray [ADDRESS]`, issue 22).

One Ray task per input video, asking for one GPU where the cluster has GPUs and otherwise
`--ray-cpus` CPUs; each task writes `DIR/<name>/` (names from `cli.output_names`, the
same as a local batch) on storage that every node mounts. Decisions worth knowing:

- Retries: a task whose worker process or node dies is retried by Ray (`--ray-retries`,
  `max_retries`); application errors are never retried (`retry_exceptions=False`): a user
  error (bad input, no person, ...) is caught in the task and returned with its exit code,
  so it fails alone and is reported per input.
- A retry resumes its own export: every manifest written by a batch carries the batch's
  token (`batch`); a task that finds its token in the folder continues with the `--resume`
  logic (intact PNG frames skipped, containers rewritten from a temp file, the folder lock
  of the dead worker released by the kernel), so no frame is lost or written twice, and the
  files are byte-identical to an uninterrupted run.
- Storage: before any task runs, a marker file written by the driver in DIR and every input
  must be visible from every node (a tiny probe task pinned to each node); otherwise the
  batch is refused (exit 6 for the output, 3 for an input) with the node that cannot see
  it. Paths are made absolute first (workers do not share the driver's working directory).
- A local cluster (no ADDRESS and no $RAY_ADDRESS, or ADDRESS `local`) is started on the
  loopback interface only, with a small object store (results are small dicts), and shut
  down at the end; `vidmatte-cli` never starts or stops a cluster it joined.
- Progress: tasks report to a zero-CPU actor; the driver prints videos and frames done,
  fps and ETA over the whole batch, then one summary line per input and returns the first
  failing input's exit code (7 where a task failed for good because its worker kept dying).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidmatte.matting.config import PipelineConfig
from vidmatte.matting.io.export import ExportConfig
from vidmatte.matting.progress import Progress, TerminalProgress
from vidmatte.models.errors import InputError, OutputError, UsageError

EXIT_TASK_FAILED = 7  # the task's worker or node died more often than --ray-retries
INSTALL_HINT = "pip install 'vidmatte[ray]'"
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20
# environment the driver passes on to the workers (model locations, offline Hub cache)
_FORWARDED_ENV = ("VIDMATTE_", "HF_", "HUGGINGFACE_")


@dataclass(frozen=True)
class RayOptions:
    address: str = ""  # "" = $RAY_ADDRESS or a local cluster; "local" = always local
    cpus: float = 2.0  # per task on a cluster without GPUs
    retries: int = 3  # per task, for worker/node deaths


@dataclass
class TaskResult:
    """What one task reports back (a plain dataclass: small, pickled by Ray)."""

    input: str
    out: str
    code: int = 0
    message: str = ""
    frames: int = 0
    seconds: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    skipped: bool = False
    resumed: bool = False
    warnings: list[str] = field(default_factory=list)
    node: str = ""
    attempts: int = 1  # filled in by the driver (retries after worker/node deaths + 1)


def _loopback(address: str) -> bool:
    """A local cluster (no address, `local`) or one at a loopback address."""
    if not address or address == "local":
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def import_ray(address: str = ""):
    """Ray, or a one-line UsageError (exit 2) that says what to install. For a cluster on
    this machine alone (`_loopback`), Ray is told before it loads to use the loopback
    interface (it otherwise advertises, and dials, the machine's network address)."""
    if _loopback(address):
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    token_file = Path.home() / ".ray" / "auth_token"
    if (
        address
        and address != "local"
        and "RAY_AUTH_MODE" not in os.environ
        and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file())
    ):
        # Clusters started by `ray start` use token authentication by default; a driver
        # joining one presents $RAY_AUTH_TOKEN or ~/.ray/auth_token (README, Batches).
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _connect(ray, opts: RayOptions) -> bool:
    """Join the cluster at the address (or $RAY_ADDRESS), or start a local one on loopback.
    Returns True where we started it (and so must stop it)."""
    address = _address(opts)
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}
    common = dict(
        runtime_env={"env_vars": env} if env else None,
        log_to_driver=False,
        configure_logging=False,
        include_dashboard=False,
        ignore_reinit_error=True,
    )
    if address and address != "local":
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--ray {address}: cannot join the Ray cluster ({e})") from None
        return False
    # A cluster of this machine alone, on the loopback interface (import_ray).
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
    return True


def _address(opts: RayOptions) -> str:
    return opts.address or os.environ.get("RAY_ADDRESS", "")


def _absolute(config: PipelineConfig) -> PipelineConfig:
    """Path settings as absolute paths: workers do not run in the driver's folder."""
    changes = {
        name: str(Path(value).expanduser().absolute())
        for name in ("weights", "teacher_dir", "matting_weights")
        if isinstance(value := getattr(config, name), str) and value
    }
    return dataclasses.replace(config, **changes) if changes else config


# ------------------------------------------------------------------ on the workers

_PIPELINES: dict[str, Any] = {}  # per worker process: models load once per config


def probe_storage(marker: str, token: str, inputs: list[str]) -> list[str]:
    """On one node: what of the batch's storage it cannot see."""
    import socket

    host = socket.gethostname()
    problems = []
    try:
        seen = Path(marker).read_text().strip() == token
    except OSError:
        seen = False
    if not seen:
        problems.append(f"out:{host}")
    problems += [f"in:{host}:{p}" for p in inputs if not os.path.exists(p)]
    return problems


def _matte(
    input_path: str,
    out_dir: str,
    config: PipelineConfig,
    export: ExportConfig,
    start: str | None,
    end: str | None,
    batch: str,
    tracker,
) -> TaskResult:
    """One input on a worker: run_one, resuming the folder when this batch started it."""
    import socket
    import warnings

    import ray

    from vidmatte.matting.io.manifest import read_manifest
    from vidmatte.matting.io.video import TruncatedInputWarning
    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.matting.runner import run_one
    from vidmatte.models.errors import VidmatteError

    warnings.filterwarnings("ignore", category=TruncatedInputWarning)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        import torch

        torch.set_num_threads(max(1, int(cpus)))
    tracker.started.remote(input_path)
    result = TaskResult(input=input_path, out=out_dir, node=socket.gethostname())
    try:
        if read_manifest(Path(out_dir)).get("batch") == batch:
            export = dataclasses.replace(export, resume=True, overwrite=False)
            result.resumed = True  # a retry: continue what the dead worker wrote
    except InputError:
        pass
    last = [0.0]

    def progress(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or (p.total and p.done >= p.total):
            last[0] = now
            tracker.progress.remote(input_path, p.done, p.total)

    try:
        key = repr(config)
        pipeline = _PIPELINES.get(key)
        if pipeline is None:
            pipeline = _PIPELINES[key] = Pipeline(config)
        summary = run_one(
            input_path, out_dir, pipeline, export, start=start, end=end, progress=progress,
            on_warning=result.warnings.append, batch=batch,
        )  # fmt: skip
    except VidmatteError as e:  # a user error: reported, never retried
        result.code, result.message = e.exit_code, str(e)
        return result
    result.frames, result.seconds = summary.frames, summary.seconds
    result.tracks, result.skipped = summary.tracks, summary.skipped
    tracker.progress.remote(input_path, summary.frames, summary.frames)
    return result


class _Tracker:
    """Zero-CPU actor: attempts and frames done per input, for the driver's progress."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.total: dict[str, int | None] = {}

    def started(self, key: str) -> None:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.done[key] = 0

    def progress(self, key: str, done: int, total: int | None) -> None:
        self.done[key], self.total[key] = done, total

    def snapshot(self) -> tuple[dict, dict, dict]:
        return self.attempts, self.done, self.total


# ------------------------------------------------------------------ the driver


def run_batch(
    jobs: list[tuple[Path, Path]],
    config: PipelineConfig,
    export: ExportConfig,
    opts: RayOptions,
    *,
    start: str | None,
    end: str | None,
    say,
) -> int:
    """Run every (input, output folder) as one Ray task; returns the CLI's exit code."""
    ray = import_ray(_address(opts))
    jobs = [(p.absolute(), o.absolute()) for p, o in jobs]
    config = _absolute(config)
    batch = uuid.uuid4().hex
    term = signal.getsignal(signal.SIGTERM)
    _connect(ray, opts)
    terminated: list[int] = []

    def on_term(signum, frame) -> None:  # Ray's own handler aborts the driver
        terminated.append(signum)
        raise KeyboardInterrupt  # Ray's waits turn any interrupt into a plain one anyway

    signal.signal(signal.SIGTERM, on_term)
    refs: dict = {}
    try:
        _check_storage(ray, jobs, batch)
        gpus = ray.cluster_resources().get("GPU", 0)
        request = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": opts.cpus}
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        say.info(
            f"vidmatte on Ray: {len(jobs)} input(s) on {nodes} node(s), "
            f"{'1 GPU' if gpus >= 1 else f'{opts.cpus:g} CPUs'} per input"
        )
        tracker = ray.remote(_Tracker).options(num_cpus=0).remote()
        task = ray.remote(_matte).options(
            max_retries=opts.retries, retry_exceptions=False, **request
        )
        for p, o in jobs:
            refs[task.remote(str(p), str(o), config, export, start, end, batch, tracker)] = (p, o)
        results = _follow(ray, refs, tracker, say)
    except KeyboardInterrupt:
        # Ctrl-C / SIGTERM: a KeyboardInterrupt in each task, which stops it cleanly
        # (resumable: rerun the same command with --resume); give them a moment to do so.
        for ref in refs:
            ray.cancel(ref)
        if refs:
            ray.wait(list(refs), num_returns=len(refs), timeout=30)
        if terminated and callable(term):
            term(signal.SIGTERM, None)  # the CLI's handler: reported as SIGTERM (143)
        raise
    finally:
        signal.signal(signal.SIGTERM, term)
        ray.shutdown()  # stops a cluster we started; only disconnects from one we joined
    return _report([p for p, _ in jobs], results, say)


def _check_storage(ray, jobs: list[tuple[Path, Path]], token: str) -> None:
    """Refuse a batch whose output root or inputs some node cannot see (README: shared
    storage). One node that is this machine needs no probe."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1 and all(
        n.get("NodeManagerAddress") in ("127.0.0.1", ray.util.get_node_ip_address()) for n in nodes
    ):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from vidmatte.matting.io.atomic import atomic_write_text, make_dirs

    roots = sorted({str(o.parent) for _, o in jobs})
    marker = Path(roots[0]) / f".vidmatte-ray-{token}"
    make_dirs(marker.parent)
    atomic_write_text(marker, token)
    try:
        probe = ray.remote(probe_storage).options(num_cpus=0)
        refs = [
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker), token, [str(p) for p, _ in jobs])
            for n in nodes
        ]
        problems = [p for r in ray.get(refs, timeout=120) for p in r]
    finally:
        marker.unlink(missing_ok=True)
    for p in problems:
        kind, host, *rest = p.split(":", 2)
        if kind == "out":
            raise OutputError(
                f"{roots[0]} is not visible from node {host}: --out must be on storage every "
                "node mounts at the same path (NFS, a cluster file system; README, Batches)"
            )
        raise InputError(f"{rest[0]} is not visible from node {host} (inputs must be shared too)")


def _follow(ray, refs: dict, tracker, say) -> dict[Path, TaskResult]:
    """Wait for every task, printing aggregate progress and a line per finished input."""
    from vidmatte.matting.progress import RateMeter

    bar = TerminalProgress(say.mode)
    results: dict[Path, TaskResult] = {}
    pending = list(refs)
    meter = RateMeter(None)
    n = len(refs)
    attempts: dict[str, int] = {}
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in ready:
            path, out = refs[ref]
            try:
                res = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                raise KeyboardInterrupt from None
            except ray.exceptions.RayTaskError as e:  # a bug, not a user error: say so
                cause = getattr(e, "cause", None) or e
                res = TaskResult(str(path), str(out), code=1, message=f"failed: {cause!r}")
            except ray.exceptions.RayError as e:  # worker or node died too often
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                res = TaskResult(
                    str(path), str(out), code=EXIT_TASK_FAILED,
                    message=f"Ray task failed after its retries ({type(e).__name__}: {first})",
                )  # fmt: skip
            results[path] = res
            _line(path, res, say)
        att, done, total = ray.get(tracker.snapshot.remote())
        attempts.update(att)
        frames = sum(done.values())
        known = [t for t in total.values() if t]
        est = None
        if known:
            est = int(sum(known) + (n - len(known)) * (sum(known) / len(known)))
        p = meter.update(frames)
        eta = (est - frames) / p.fps if est and p.fps > 0 else None
        bar(
            Progress(
                frames,
                est,
                p.fps,
                eta if eta is None else max(0.0, eta),
                p.elapsed_s,
                stage="batch",
                input=f"videos {len(results)}/{n}",
            )  # fmt: skip
        )
    bar.finish()
    for path, res in results.items():
        res.attempts = max(1, attempts.get(str(path), 1))
    return results


def _line(path: Path, res: TaskResult, say) -> None:
    for w in res.warnings:
        say.warn(w)
    if res.code:
        say.error(f"{path.name}: {res.message}")
    elif res.skipped:
        say.info(f"{path.name}: already complete in {res.out}; nothing to do")
    else:
        people = ", ".join(f"{t['name']} (frames {t['first']}-{t['last']})" for t in res.tracks)
        say.info(
            f"{path.name}: {len(res.tracks)} person(s): {people}; {res.frames} frames in "
            f"{res.seconds:.1f} s on {res.node}{' (resumed after a retry)' if res.resumed else ''}"
        )


def _report(order: list[Path], results: dict[Path, TaskResult], say) -> int:
    """The per-input summary, in input order; the first failing input's code."""
    first_error = 0
    say.info("summary:")
    for path in order:
        res = results[path]
        attempts = res.attempts
        status = "ok" if res.code == 0 else f"exit {res.code}"
        extra = f", {attempts} attempts" if attempts > 1 else ""
        what = res.message if res.code else f"{len(res.tracks)} person(s), {res.frames} frames"
        say.info(f"  {path.name}: {status} ({what}{extra}) -> {res.out}")
        say.event(
            {
                "event": "done" if res.code == 0 else "error",
                "input": res.input,
                "out": res.out,
                "code": res.code,
                "message": res.message,
                "frames": res.frames,
                "seconds": round(res.seconds, 3),
                "tracks": res.tracks,
                "attempts": attempts,
                "resumed": res.resumed,
                "skipped": res.skipped,
                "node": res.node,
            }
        )
    for res in results.values():
        first_error = first_error or res.code
    return first_error
