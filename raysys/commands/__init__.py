"""Sub-commands of the ``raysys`` CLI (see :mod:`raysys.cli`).

A command module has a docstring whose ``Examples::`` block becomes its ``--help`` epilog,
``add_arguments(parser)`` (shared options come from :mod:`raysys.commands.options`) and
``run(args) -> int``, which builds typed configs from the arguments and calls the library.
``run`` raises on bad input (:class:`raysys.errors.UserError`, ``ValueError``,
``FileNotFoundError``); :func:`raysys.cli.main` turns that into one line and exit 2.
"""
