"""Sub-commands of the ``raysys`` CLI (see raysys.cli)."""
