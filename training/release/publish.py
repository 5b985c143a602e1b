"""`vidmatte-train publish`: a model folder + a generated model card -> the Hugging Face Hub.

The folder is fully verified first (config, sha256, safetensors header); the card is built
from facts (training/release/model_card.py). The upload is staged in a temporary folder holding
exactly the files the runtime fetches (config.json, model.safetensors, README.md), so
nothing else in the source folder can leak. `--dry-run` prints what would be uploaded
and writes nothing remote. After a real upload the commit hash is printed: record it in
`vidmatte.models.weights.resolution.HUB_REPOS` so releases stay pinned to those bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from vidmatte.matting.io.atomic import atomic_write_text
from vidmatte.models.errors import OutputError, UsageError

CARD_NAME = "README.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="model folder (from `vidmatte-train export`)")
    parser.add_argument("--repo-id", help="Hub repo (default: the one registered for the model)")
    parser.add_argument("--metrics", metavar="JSON", help="evaluation metrics (vidmatte-eval)")
    parser.add_argument(
        "--data", metavar="JSON", help='training data: [{"name", "licence", "url", "notes"}]'
    )
    parser.add_argument("--license", default="apache-2.0", help="weights licence (Hub id)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--message", default=None, help="commit message")
    parser.add_argument("--card-out", metavar="FILE", help="also write the card to FILE")
    parser.add_argument(
        "--recipe", metavar="MD", help="markdown appended to the card (how the weights were made)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be uploaded; upload nothing"
    )


def default_repo_id(architecture: str) -> str:
    from vidmatte.models.weights.resolution import HUB_REPOS, MODEL_ARCHITECTURE

    for name, arch in MODEL_ARCHITECTURE.items():
        if arch == architecture and name in HUB_REPOS:
            return HUB_REPOS[name][0]
    raise UsageError(f"no Hub repo is registered for {architecture!r}; pass --repo-id")


def stage(folder: Path, card: str, into: Path) -> list[Path]:
    """Put exactly the published files into `into` (hard links where possible)."""
    from vidmatte.models.weights.folder import CONFIG_NAME, TENSORS_NAME

    files = []
    for name in (CONFIG_NAME, TENSORS_NAME):
        dst = into / name
        try:
            os.link(folder / name, dst)
        except OSError:
            shutil.copy2(folder / name, dst)
        files.append(dst)
    atomic_write_text(into / CARD_NAME, card)
    files.append(into / CARD_NAME)
    return files


def run(args: argparse.Namespace) -> int:
    from vidmatte.models.weights.resolution import verify_folder
    from vidmatte.training.release.model_card import (
        build_model_card,
        load_data_sources,
        load_metrics,
    )

    folder = Path(args.folder)
    cfg = verify_folder(folder)
    repo_id = args.repo_id or default_repo_id(cfg["architecture"])
    metrics = load_metrics(args.metrics) if args.metrics else None
    data = load_data_sources(args.data) if args.data else []
    card = build_model_card(cfg, repo_id=repo_id, metrics=metrics, data=data, licence=args.license)
    if args.recipe:
        try:
            card = card.rstrip("\n") + "\n\n" + Path(args.recipe).read_text().strip() + "\n"
        except OSError as e:
            raise UsageError(f"cannot read --recipe {args.recipe}: {e.strerror}") from None
    if args.card_out:
        atomic_write_text(Path(args.card_out), card)
    message = args.message or f"vidmatte {cfg.get('version', '?')}: {cfg['architecture']} weights"

    with tempfile.TemporaryDirectory(prefix="vidmatte-publish-") as tmp:
        files = stage(folder, card, Path(tmp))
        if args.dry_run:
            print(f"dry run: would upload to https://huggingface.co/{repo_id}")
            print(f"  commit message: {message}")
            print(f"  private: {bool(args.private)}")
            for f in files:
                print(f"  {f.name:<20} {f.stat().st_size:>12,d} B")
            print(f"  model.safetensors sha256 {cfg['sha256']}")
            return 0
        try:
            from huggingface_hub import HfApi

            api = HfApi()
            api.create_repo(repo_id, private=args.private, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, commit_message=message, repo_type="model"
            )
        except Exception as e:  # noqa: BLE001 - network / auth / quota: one line for the user
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise OutputError(f"cannot publish to {repo_id}: {first}") from None
    oid = getattr(info, "oid", None)
    print(f"published {repo_id} at commit {oid}")
    print(f"pin it: HUB_REPOS[...] = ({repo_id!r}, {oid!r}) in models/weights/resolution.py")
    return 0
