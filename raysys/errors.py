"""The errors a user can cause, and how the command line shows them.

``raysys.cli.main`` has one error handler: :class:`UserError`, and the ``ValueError``,
``FileNotFoundError`` and ``PermissionError`` that the library raises for bad input (a
wrong option, a missing folder, a malformed file; registry misses are ``ValueError`` too),
print one line ``raysys <command>: error: <message>`` and exit 2. :class:`Failure` prints
one line and exits 1 (something failed whose details are already written elsewhere, e.g. a
report step and its log). Anything else is a bug and shows its traceback.

Messages say what is wrong and how to fix it: name the option, file or field, and the
valid values.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_USAGE", "USER_ERRORS", "Failure",
           "UserError", "require_out_folder"]

EXIT_USAGE = 2  # bad input: the user can fix it (argparse uses 2 as well)
EXIT_FAILURE = 1  # a failure explained elsewhere (a log)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class UserError(ValueError):
    """Bad input from the user: an option, a file, a config field. One line, exit 2."""


class Failure(RuntimeError):
    """A failure whose details are already written elsewhere (its message says where):
    one line, exit 1."""


# what the CLI treats as the user's error (one line, exit 2, no traceback)
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError,
                                                 NotADirectoryError, PermissionError)


def require_out_folder(path: str | os.PathLike | None, flag: str = "--out") -> None:
    """An output folder must not be an existing file (checked before any work, so the
    error is one line and not a ``FileExistsError`` from deep inside a run).

    Raises:
        UserError: naming the option and the path.
    """
    p = path if hasattr(path, "is_dir") or path is None else Path(path)  # or a RemotePath
    if p is not None and p.exists() and not p.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder (a new one, "
                        "or the one of an earlier run to resume it)")
