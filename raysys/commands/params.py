"""``raysys params``: ViewSAM parameter report (random init, no checkpoint, no forward pass).

Examples::

    raysys params                                    # embedded tiny SAM2 + MiniLM
    raysys params --sam2-config configs/sam2.1/sam2.1_hiera_b+.yaml \\
        --text-encoder random:roberta-base --freeze-base   # the paper's setting
    raysys params --json params.json                 # also as JSON ('-': stdout only)
"""

from __future__ import annotations

import argparse

from raysys.commands.options import add_json, write_json
from raysys.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sam2-config", default=None,
                   help="SAM2 YAML: a local file, a sam2 package config such as "
                        "configs/sam2.1/sam2.1_hiera_b+.yaml, or 'tiny' (default: the embedded "
                        "tiny config)")
    p.add_argument("--text-encoder", default="minilm",
                   help="text encoder spec: minilm (default), hf:DIR, random:roberta-base")
    p.add_argument("--freeze-base", action="store_true",
                   help="count SAM2 as frozen, as when it is loaded from a checkpoint (the "
                        "paper's setting); by default a random-init base is trainable")
    add_json(p, "also write the report as JSON to PATH ('-': print only the JSON)")


def run(args: argparse.Namespace) -> int:
    from raysys.viewsam import build_viewsam, format_parameter_report, parameter_report
    from raysys.viewsam.report import trainable_flags

    try:
        model = build_viewsam(sam2_config=args.sam2_config, text_encoder=args.text_encoder,
                              freeze_base=True if args.freeze_base else None)
    except ImportError as e:  # an optional package a backend needs
        raise UserError(f"{e}; install it or pick another --text-encoder") from None
    report = parameter_report(model)
    if args.json is not None:
        write_json(args.json, report)
        if str(args.json) == "-":
            return 0
    print(f"ViewSAM parameters: SAM2 {args.sam2_config or 'tiny (embedded)'}, "
          f"text encoder {args.text_encoder}")
    print(format_parameter_report(report, trainable_flags(model)))
    return 0
