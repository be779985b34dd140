"""The ``raysys`` command line: one sub-command per job, each in ``raysys.commands``.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; it converts
arguments into typed library calls (the library never reads argv or config files).
Modules are imported only when their command runs, so ``raysys --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("raysys.commands.synth", "generate a synthetic multi-camera CRMOT benchmark"),
    "viz": ("raysys.commands.viz", "draw a mosaic of all views with boxes and ids (PNG + GIF)"),
    "eval": ("raysys.commands.eval", "CRTrack evaluation: CVR-IDF1 / CVR-MA"),
    "label": ("raysys.commands.label", "Stage 1: cross-view pseudo labels from raw videos"),
    "quality": ("raysys.commands.quality", "score Stage 1 pseudo labels per stage (Table 4)"),
    "train": ("raysys.commands.train", "Stage 2: train ViewSAM on pseudo labels (Ray Train)"),
    "pretrain-base": ("raysys.commands.pretrain_base",
                      "pre-train the embedded tiny SAM2 base on generated scenes"),
    "pretrain-detector": ("raysys.commands.pretrain_detector",
                          "pre-train the classical tracker's optional person detector"),
    "track": ("raysys.commands.track", "cross-view referring tracking with a trained ViewSAM"),
    "baseline": ("raysys.commands.baseline",
                 "zero-shot Table 1 baselines: concept (SAM3 row) | sam2"),
    "report": ("raysys.commands.report",
               "the paper's tables on the generated benchmark (md/json/charts)"),
    "params": ("raysys.commands.params", "ViewSAM parameter report (no checkpoint needed)"),
    "demo": ("raysys.commands.demo", "the embedded default end to end on a local Ray"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raysys",
        description="Weakly supervised cross-view referring multi-object tracking on Ray.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if only is None or only == name:
            importlib.import_module(mod).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=name if name in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
