"""Offline evaluations: datasets of scored outputs, paired comparisons, calibrated judge scores.

See ``docs/evaluations.md``; :class:`EvalService` is ``Workspace.evals``.
"""

from promptver.evals.service import EvalService, lower_is_better

__all__ = ["EvalService", "lower_is_better"]
