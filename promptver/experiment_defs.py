"""Names of experiments that the command line parses before anything is loaded.

A leaf of the import graph (standard library only): ``promptver experiment list --status`` and
``--help`` offer these choices without building the models or opening the database.
:mod:`promptver.experiments` re-exports every name here.
"""

from __future__ import annotations

#: an experiment's life: drafted, running, then completed or stopped
STATUSES = ("draft", "running", "completed", "stopped")
