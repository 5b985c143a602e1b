"""`vidmatte-train fit --config CONFIG.toml`: train the trimap network (or IndexNet).

The config is TOML (tomllib) with sections [run], [optim], [model], [data], [loss], [eval]
and a top-level `task = "trimap" | "indexnet"`. CONFIG may be a path or the name of a
config shipped in vidmatte/training/configs (`tiny`, `cpu`, `recipe`). Any value can be
overridden on the command line: `--set data.dataset=/data/dance --set run.steps=2000`
(values parse as TOML, bare words as strings). Relative paths are relative to the
current directory. Several GPUs: `torchrun --nproc-per-node 4 -m vidmatte.training.cli fit
--config ...` (the trainer creates the process group from torchrun's environment).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidmatte.models.errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="TOML config path, or tiny/cpu/recipe")
    parser.add_argument("--out", help="run folder (overrides run.out_dir)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue from the run folder's last checkpoint (or from CHECKPOINT)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a run folder that already holds checkpoints",
    )
    parser.add_argument("--steps", type=int, help="total steps (overrides run.steps)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides run.device")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable)",
    )
    parser.add_argument(
        "--precompute-flow",
        action="store_true",
        help="fill the DIS flow cache before training (CPU flow only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def resolve_config(name: str) -> Path:
    p = Path(name)
    if p.is_file():
        return p
    shipped = CONFIG_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.toml")))
    raise UsageError(f"config {name!r} not found (a path, or one of: {names})")


def apply_override(cfg: dict[str, Any], item: str) -> None:
    import tomllib

    key, sep, raw = item.partition("=")
    if not sep or "." not in key:
        raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string
    *path, last = key.split(".")
    node = cfg
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"--set {item!r}: {part} is not a section")
    node[last] = value


def build(cfg: dict[str, Any], resume=None, overwrite: bool = False, quiet: bool = False):
    """(trainer, task) from a config dict: the same path the CLI and tests take."""
    from vidmatte.training.trainer import OptimConfig, RunConfig, Trainer, from_dict

    known = {"task", "run", "optim", "model", "data", "loss", "eval"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UsageError(f"config: unknown section(s) {', '.join(unknown)}")
    run = from_dict(RunConfig, cfg.get("run"), "run")
    optim = from_dict(OptimConfig, cfg.get("optim"), "optim")
    kind = cfg.get("task", "trimap")
    if kind == "trimap":
        from vidmatte.training.trimap_training import TrimapTask

        task = TrimapTask(cfg, seed=run.seed)
    elif kind == "indexnet":
        from vidmatte.training.indexnet_training import IndexNetTask

        task = IndexNetTask(cfg, seed=run.seed)
    else:
        raise UsageError(f"config: task must be 'trimap' or 'indexnet', not {kind!r}")
    trainer = Trainer(
        task, run, optim, resume=resume, overwrite=overwrite, config_dict=cfg, quiet=quiet
    )
    return trainer, task


def precompute_flow(task) -> int:
    from vidmatte.training.data.datasets import MixedDataset

    ds = task.build_train_set(0, 1)
    video = ds.video if isinstance(ds, MixedDataset) else None
    if video is None or getattr(video, "flow_cache", True) is None:
        raise UsageError("--precompute-flow needs a video dataset with data.flow = 'dis'")
    n = 0
    for part in getattr(video, "parts", [video]):  # ConcatVideoDataset: each its own cache
        pairs = list(part.flow_pairs())

        def progress(k: int, total: int = len(pairs)) -> None:
            if k % 50 == 0 or k == total:
                sys.stderr.write(f"\rflow {k}/{total}")
                sys.stderr.flush()

        got = part.flow_cache.precompute(pairs, part.load_by_index, progress)
        sys.stderr.write(f"\nflow cache: {got} new pairs in {part.flow_cache.folder}\n")
        n += got
    return n


def run(args: argparse.Namespace) -> int:
    from vidmatte.training.trainer import load_toml

    cfg = load_toml(resolve_config(args.config))
    for item in args.set:
        apply_override(cfg, item)
    run_cfg = cfg.setdefault("run", {})
    if args.out:
        run_cfg["out_dir"] = args.out
    if args.steps is not None:
        run_cfg["steps"] = args.steps
    if args.device:
        run_cfg["device"] = args.device
    trainer, task = build(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    if args.precompute_flow:
        precompute_flow(task)
    res = trainer.fit()
    if trainer.rank == 0:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in res.metrics.items())
        print(
            f"trained {res.step} steps, last loss {res.last_loss:.4f}"
            + (f"; {metrics}" if metrics else "")
        )
        print(f"run folder: {trainer.out} (model/, checkpoints/, train.csv, eval.csv)")
    return 0
