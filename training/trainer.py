"""A small step-based trainer shared by the trimap network and IndexNet.

What it does, and why:
- SGD with momentum; lr warm-up, then the paper's step decay (/10 at 7/12 of the schedule:
  "12 epochs, divided by 10 at the 7th").
- AMP (float16 autocast + GradScaler) on CUDA only; gradient clipping after unscaling.
- Exact resume: a checkpoint holds model, optimiser, scheduler, scaler, RNG states and the
  step. The data position is *derived* from the step (samples are a pure function of
  (seed, epoch, index), see datasets.ResumableSampler) and the global torch RNG is re-seeded
  from (seed, rank, step) before every step, so N straight steps and N/2 + resume + N/2
  give identical parameters, with any number of loader workers.
- Several GPUs: run under torchrun; the process group is created here (NCCL on CUDA, gloo
  on CPU) unless the caller made one. The loss module (model + losses) is what DDP wraps,
  so every forward (main loss and the temporal loss's extra `instance_logits` pass) goes
  through DDP once per step.
- Logs: CSV (train.csv, eval.csv) in the run folder; TensorBoard events too when the
  `tensorboard` package is installed. A one-line progress display with ETA on rank 0.
- Checkpoints are written atomically (temp + rename) and loaded with weights_only=True.

A task (trimap_training.TrimapTask, indexnet_training.IndexNetTask) supplies the model,
the training set, the loss module, evaluation and export.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from vidmatte.matting.io.atomic import atomic_path, atomic_write_text, make_dirs
from vidmatte.models.errors import Cancelled, InputError, OutputError, UsageError
from vidmatte.models.weights.checkpoints import load_checkpoint_object
from vidmatte.training.data.datasets import ResumableSampler

# --------------------------------------------------------------------------- config


@dataclass
class RunConfig:
    out_dir: str = "runs/trimapnet"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8  # per process
    num_workers: int = 2
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # CUDA only
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end
    ckpt_every: int = 500
    keep_checkpoints: int = 3
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class OptimConfig:
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    warmup_factor: float = 0.01
    decay_at: float = 7 / 12  # fraction of the schedule
    decay_factor: float = 0.1
    grad_clip: float = 35.0  # max global grad norm; 0 = off


def from_dict(cls, data: dict[str, Any] | None, section: str):
    """Build a config dataclass, refusing unknown keys (a typo must not be silently ignored)."""
    data = dict(data or {})
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(f"config [{section}]: unknown key(s) {', '.join(unknown)}")
    for k, v in data.items():
        default = getattr(cls(), k)
        if isinstance(default, tuple) and isinstance(v, list):
            data[k] = tuple(v)
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            data[k] = float(v)
    return cls(**data)


def load_toml(path: str | Path) -> dict[str, Any]:
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"config not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config {path} is not valid TOML: {e}") from None


# --------------------------------------------------------------------------- task protocol


class Task(Protocol):
    def build_model(self) -> nn.Module: ...
    def build_train_set(self, rank: int, world: int) -> torch.utils.data.Dataset: ...
    def collate(self, samples: list) -> dict: ...
    def loss_module(self, model: nn.Module) -> nn.Module: ...
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]: ...
    def export(self, model: nn.Module, folder: Path) -> None: ...


# --------------------------------------------------------------------------- helpers


def lr_factor(step: int, total: int, o: OptimConfig) -> float:
    """Linear warm-up, then x decay_factor from decay_at * total on."""
    f = 1.0
    if o.warmup_steps > 0 and step < o.warmup_steps:
        a = step / o.warmup_steps
        f = o.warmup_factor * (1 - a) + a
    if step >= math.floor(o.decay_at * total):
        f *= o.decay_factor
    return f


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _rng_state() -> dict[str, Any]:
    npst = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [npst[0], torch.from_numpy(npst[1].astype(np.int64)), *map(float, npst[2:])],
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), n[4]))
    p = s["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save under a temporary name, renamed into place (matting/io/atomic.py)."""
    make_dirs(path.parent)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def list_checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*.pt"))


class Progress:
    """One status line with rate and ETA (rewritten in place on a terminal)."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, step: int, text: str) -> None:
        if not self.enabled:
            return
        done = step - self.start
        el = time.monotonic() - self.t0
        rate = done / el if el > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
        line = f"step {step}/{self.total} {text} {rate:.2f} it/s ETA {eta_s}"
        sys.stderr.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


class CsvLog:
    def __init__(self, path: Path, keep_until: int | None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file() and keep_until is not None:  # resume: drop rows past the checkpoint
            with path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
        self._write()

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=keys or ["step"])
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue(), fsync=False)


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: CSV only
        return None
    return SummaryWriter(str(folder))


# --------------------------------------------------------------------------- trainer


@dataclass
class FitResult:
    step: int
    last_loss: float
    losses: list[float]
    metrics: dict[str, float]
    checkpoint: Path | None


class Trainer:
    def __init__(
        self,
        task: Task,
        run: RunConfig,
        optim: OptimConfig,
        resume: str | Path | None = None,
        overwrite: bool = False,
        config_dict: dict[str, Any] | None = None,
        quiet: bool = False,
    ) -> None:
        self.task, self.run, self.optim = task, run, optim
        self.config_dict = config_dict or {"run": asdict(run), "optim": asdict(optim)}
        self.quiet = quiet
        self._init_distributed()
        self.out = Path(run.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.resume_path = self._resolve_resume(resume, overwrite)

    # -- setup
    def _init_distributed(self) -> None:
        import torch.distributed as dist

        want = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if want and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.run.device != "cpu" else "gloo"
            dist.init_process_group(backend)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        dev = self.run.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda":
            if not torch.cuda.is_available():
                raise UsageError("device = 'cuda' but no CUDA GPU is available")
            local = int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count()))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device(dev)
        self.amp = bool(self.run.amp and self.device.type == "cuda")

    def _resolve_resume(self, resume, overwrite: bool) -> Path | None:
        existing = list_checkpoints(self.ckpt_dir)
        if resume in (None, "", False):
            if existing and not overwrite:
                raise OutputError(
                    f"{self.out} already holds checkpoints: pass --resume to continue "
                    "or --overwrite to start again"
                )
            return None
        if str(resume) == "auto":
            return existing[-1] if existing else None
        p = Path(resume)
        if not p.is_file():
            raise InputError(f"checkpoint not found: {p}")
        return p

    # -- main loop
    def fit(self, until: int | None = None) -> FitResult:
        """Train to `run.steps` (or stop early at step `until`, keeping the schedule)."""
        run, o = self.run, self.optim
        if run.threads > 0:
            torch.set_num_threads(run.threads)
        torch.manual_seed(run.seed)
        np.random.seed(run.seed % 2**32)
        random.seed(run.seed)
        if run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = self.task.build_model().to(self.device)
        self.model = model  # the trained network, for callers (tests, export scripts)
        lossmod = self.task.loss_module(model).to(self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, run.steps, o))
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        step = 0
        if self.resume_path is not None:
            ck = load_checkpoint_object(self.resume_path)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            _set_rng_state(ck["rng"])
            step = int(ck["step"])
        wrapped: nn.Module = lossmod
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DDP(lossmod, device_ids=ids)
        is_main = self.rank == 0
        if is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        train_set = self.task.build_train_set(self.rank, self.world)
        sampler = ResumableSampler(
            len(train_set),
            seed=run.seed,
            rank=self.rank,
            world=self.world,
            start=step * run.batch_size,
        )
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=run.batch_size,
            sampler=sampler,
            num_workers=run.num_workers,
            collate_fn=self.task.collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=run.num_workers > 0,
        )
        log = CsvLog(self.out / "train.csv", step) if is_main else None
        elog = CsvLog(self.out / "eval.csv", step) if is_main else None
        tb = _tensorboard(self.out / "tb") if is_main else None
        end = run.steps if until is None else min(until, run.steps)
        prog = Progress(run.steps, step, is_main and not self.quiet)
        losses: list[float] = []
        metrics: dict[str, float] = {}
        ckpt: Path | None = None
        state = {"model": model, "opt": opt, "sched": sched, "scaler": scaler}
        it = iter(loader)
        t_last = time.monotonic()
        try:
            while step < end:
                torch.manual_seed(step_seed(run.seed, self.rank, step))
                batch = to_device(next(it), self.device)
                lossmod.train()
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    parts = wrapped(batch)
                loss = parts["loss"]
                if not torch.isfinite(loss):
                    raise UsageError(
                        f"the loss became {loss.item()} at step {step}: lower the learning "
                        "rate or check the data"
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if o.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
                lr_used = opt.param_groups[0]["lr"]
                scaler.step(opt)
                scaler.update()
                sched.step()
                step += 1
                losses.append(float(loss.detach()))
                if is_main and (step % run.log_every == 0 or step == end):
                    now = time.monotonic()
                    row = {
                        "step": step,
                        "lr": lr_used,
                        "sec_per_step": (now - t_last) / max(1, run.log_every),
                    }
                    row.update({k: float(v.detach()) for k, v in parts.items()})
                    t_last = now
                    log.log(row)
                    if tb is not None:
                        for k, v in row.items():
                            if k != "step":
                                tb.add_scalar(f"train/{k}", v, step)
                    prog.update(step, f"loss {row['loss']:.4f} lr {row['lr']:.2e}")
                if run.ckpt_every and step % run.ckpt_every == 0 and step < end:
                    ckpt = self._save(step, state)
                if run.eval_every and step % run.eval_every == 0 and step < run.steps:
                    metrics = self._evaluate(model, step, elog, tb)
        except KeyboardInterrupt:
            ckpt = self._save(step, state)
            raise Cancelled(f"training stopped at step {step}; resume with --resume") from None
        finally:
            prog.close()
        ckpt = self._save(step, state)
        if step >= run.steps:
            metrics = self._evaluate(model, step, elog, tb)
            if is_main:
                self.task.export(model, self.out / "model")
        if tb is not None:
            tb.close()
        return FitResult(step, losses[-1] if losses else float("nan"), losses, metrics, ckpt)

    def _evaluate(self, model, step, elog, tb) -> dict[str, float]:
        if self.rank != 0:
            return {}
        model.eval()
        with torch.no_grad():
            m = self.task.evaluate(model, self.device)
        model.train()
        if m and elog is not None:
            elog.log({"step": step, **m})
            if tb is not None:
                for k, v in m.items():
                    tb.add_scalar(f"eval/{k}", v, step)
        if m and not self.quiet:
            sys.stderr.write(
                f"eval @ {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()) + "\n"
            )
        return m

    def _save(self, step: int, s: dict) -> Path | None:
        if self.rank != 0:
            return None
        path = self.ckpt_dir / f"step_{step:08d}.pt"
        atomic_torch_save(
            {
                "model": s["model"].state_dict(),
                "optimizer": s["opt"].state_dict(),
                "scheduler": s["sched"].state_dict(),
                "scaler": s["scaler"].state_dict(),
                "rng": _rng_state(),
                "step": step,
                "world": self.world,
                "config": self.config_dict,
            },
            path,
        )
        for old in list_checkpoints(self.ckpt_dir)[: -max(1, self.run.keep_checkpoints)]:
            old.unlink(missing_ok=True)
        return path
