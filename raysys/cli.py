"""The ``raysys`` command line: one sub-command per job, each in ``raysys.commands``.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; it converts
arguments into typed library calls (the library never reads argv or config files).
Modules are imported only when their command runs, so ``raysys --help`` stays fast.

Errors are handled once, here (:func:`run_command`): a user error prints one line
``raysys <command>: error: <what is wrong and how to fix it>`` and exits 2; a failure
explained elsewhere (a report step and its log) one line and exit 1; Ctrl-C one line and
exit 130; anything else is a bug and shows its traceback. ``--log-level`` (before or after
the command name) sets how much the library logs to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import textwrap
from collections.abc import Callable

from raysys.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, USER_ERRORS, Failure

__all__ = ["COMMANDS", "build_parser", "main", "run_command", "run_job"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("raysys.commands.synth", "generate a synthetic multi-camera CRMOT benchmark"),
    "viz": ("raysys.commands.viz", "draw a mosaic of all views with boxes and ids (PNG + GIF)"),
    "eval": ("raysys.commands.eval", "CRTrack evaluation: CVR-IDF1 / CVR-MA"),
    "label": ("raysys.commands.label", "Stage 1: cross-view pseudo labels from raw videos"),
    "quality": ("raysys.commands.quality", "score Stage 1 pseudo labels per stage (Table 4)"),
    "stats": ("raysys.commands.stats",
              "benchmark statistics from GT: people, referred per expression, everyone ref."),
    "train": ("raysys.commands.train", "Stage 2: train ViewSAM on pseudo labels (Ray Train)"),
    "pretrain-base": ("raysys.commands.pretrain_base",
                      "pre-train the embedded tiny SAM2 base on generated scenes"),
    "pretrain-detector": ("raysys.commands.pretrain_detector",
                          "pre-train the classical tracker's optional person detector"),
    "pretrain-reid": ("raysys.commands.pretrain_reid",
                      "pre-train the embedded OSNet ReID model (Stage 1: --reid osnet)"),
    "pretrain-describer": ("raysys.commands.pretrain_describer",
                           "pre-train the embedded describer's attribute net"),
    "pretrain-matcher": ("raysys.commands.pretrain_matcher",
                         "pre-train the Candidate Generator's text matcher (APTM analogue)"),
    "tune": ("raysys.commands.tune",
             "sweep λ_dyn, α, δ, λ with Ray Tune on a weak-safe validation CVR-IDF1"),
    "track": ("raysys.commands.track", "cross-view referring tracking with a trained ViewSAM"),
    "serve": ("raysys.commands.serve",
              "online tracking as an autoscaled Ray Serve HTTP service (docs/serve.md)"),
    "baseline": ("raysys.commands.baseline",
                 "zero-shot Table 1 baselines: concept (SAM3 row) | sam2"),
    "report": ("raysys.commands.report",
               "the paper's tables on the generated benchmark (md/json/charts)"),
    "params": ("raysys.commands.params", "ViewSAM parameter report (no checkpoint needed)"),
    "convert-checkpoint": ("raysys.commands.convert_checkpoint",
                           "rewrite an old ViewSAM checkpoint (model.pt) in the safe format"),
    "demo": ("raysys.commands.demo", "the main job: the whole pipeline on the embedded default"),
}

EXAMPLES = """examples:
  raysys demo --out runs/demo                     # the whole pipeline, as `make demo`
  raysys synth --out data/synth --seed 0
  raysys label --data data/synth --out runs/labels
  raysys train --labels runs/labels --out runs/weak --quick
  raysys track --model runs/weak/final --data data/synth --out runs/pred
  raysys eval --gt data/synth/In-domain/gt/sorted_gt_test_In-domain --pred runs/pred
  raysys COMMAND --help                           # a command's options and examples
"""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other raysys error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_log_level(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=default,
                   metavar="LEVEL", help="how much to log to stderr: DEBUG, INFO (default), "
                   "WARNING, ERROR")


def _examples(module) -> str:
    """The ``Examples::`` block of a command module's docstring, as a help epilog."""
    doc = module.__doc__ or ""
    m = re.search(r"^Examples?::?[ \t]*\n", doc, flags=re.MULTILINE)
    if not m:
        return ""
    body = textwrap.dedent(doc[m.end():].strip("\n")).rstrip()
    return "examples:\n" + textwrap.indent(body, "  ") + "\n"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; only the command ``only`` gets its options (its module
    is imported), so that ``raysys --help`` imports no command."""
    parser = _Parser(prog="raysys", epilog=EXAMPLES,
                     description="Weakly supervised cross-view referring multi-object "
                                 "tracking on Ray.",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_log_level(parser, "INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_log_level(p, argparse.SUPPRESS)  # also after the command name
        if only == name:
            module = importlib.import_module(mod)
            module.add_arguments(p)
            p.epilog = _examples(module)
    return parser


def _command_name(argv: list[str]) -> str | None:
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--log-level":
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def _message(e: BaseException) -> str:
    """One line: an error raised in a Ray worker shows its cause, not Ray's traceback."""
    cause = getattr(e, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else e) or type(e).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def run_command(prog: str, fn: Callable[[], int | None]) -> int:
    """Run ``fn`` under the one error handler; returns the exit code."""
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Failure as e:
        print(f"{prog}: {_message(e)}", file=sys.stderr)
        return EXIT_FAILURE
    except USER_ERRORS as e:
        print(f"{prog}: error: {_message(e)}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    from raysys.runtime import configure_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    name = _command_name(argv)
    parser = build_parser(only=name if name in COMMANDS else None)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[args.command][0])
    return run_command(f"raysys {args.command}", lambda: module.run(args))


def run_job(prog: str, command, body: Callable[[argparse.Namespace], int | None],
            argv: list[str] | None = None, description: str | None = None) -> int:
    """A ``jobs/*.py`` entrypoint: parse ``argv`` with the options of ``command`` (a
    ``raysys.commands`` module; its examples in ``--help``) and ``--log-level``, configure
    logging, run ``body(args)`` under the one error handler."""
    from raysys.runtime import configure_logging

    parser = _Parser(prog=prog, description=description, epilog=_examples(command),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_log_level(parser, "INFO")
    command.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.log_level)
    return run_command(prog, lambda: body(args))


if __name__ == "__main__":
    sys.exit(main())
