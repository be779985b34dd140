"""``raysys convert-checkpoint``: a ViewSAM checkpoint of the old format (``model.pt``, a
pickle) rewritten in the current one (``checkpoint.json`` + ``model.safetensors``), which
loads without running code.

The old file is read with ``torch.load(weights_only=True)``: its payload is tensors, dicts,
lists, numbers and strings, which that load accepts, and a pickle naming anything else
(code) is refused before it runs. ``--trust`` unpickles such a file fully: only for a file
you made yourself, or whose maker you trust. The new checkpoint is then loaded once, to
say whether its weights fit the model this raysys builds.

Examples::

    raysys convert-checkpoint runs/weak/final --out runs/weak/final_v1
    raysys convert-checkpoint old/model.pt --out runs/old_model
    raysys track --model runs/weak/final_v1 --data DATA --out PRED
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raysys.commands.options import add_out, require_out_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, metavar="OLD",
                   help="old checkpoint: a folder holding model.pt (RUN/final, an epoch "
                        "checkpoint) or the model.pt itself")
    add_out(p, "new checkpoint folder (checkpoint.json + model.safetensors; must not hold a "
               "checkpoint yet)", metavar="NEW_DIR")
    p.add_argument("--trust", action="store_true",
                   help="unpickle the old file fully if a weights-only load refuses it (that "
                        "can run code: only for a file you made or whose maker you trust)")


def run(args: argparse.Namespace) -> int:
    from raysys.errors import UserError
    from raysys.viewsam.checkpoint import convert_legacy_checkpoint, load_viewsam_checkpoint

    require_out_dir(args.out)
    out = convert_legacy_checkpoint(args.source, args.out, trust=args.trust)
    print(f"[raysys convert-checkpoint] {args.source} -> {out}")
    try:
        load_viewsam_checkpoint(out)
    except UserError as e:  # e.g. keys of a model this raysys no longer builds
        print(f"  written, but it does not load as it is: {e}")
        return 0
    print(f"  it loads: raysys track --model {out} --data DATA --out PRED")
    return 0
