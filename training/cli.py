"""`vidmatte-train`: training subcommands.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; the registry below names them with a one-line help so that
`--help` lists them without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vidmatte.models import __version__
from vidmatte.models.errors import guarded_main

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pseudo-label": (
        "vidmatte.training.labels.pseudo_label",
        "label unlabelled videos with the teacher (pseudo trimaps + track IDs)",
    ),
    "distil-alpha": (
        "vidmatte.training.labels.distil_alpha",
        "alpha mattes of pseudo-labelled people from the classical matter (IndexNet data)",
    ),
    "background-matting": (
        "vidmatte.training.labels.background_matting",
        "matting triplets (image, alpha, fg) from static-camera / plain-backdrop clips",
    ),
    "fit": ("vidmatte.training.fit", "train the trimap network (or IndexNet) from a config"),
    "calibrate": (
        "vidmatte.training.labels.calibrate",
        "set trimap weights' person score threshold from pseudo-labelled frames",
    ),
    "export": (
        "vidmatte.training.release.export",
        "checkpoint -> model folder (config.json + safetensors)",
    ),
    "publish": (
        "vidmatte.training.release.publish",
        "model folder + generated model card -> the Hub",
    ),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidmatte-train", description="Train and publish vidmatte weights."
    )
    parser.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == load:
            importlib.import_module(module).add_arguments(p)
    return parser


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(load=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    return guarded_main("vidmatte-train", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
