"""Metric events: CSV import, the tracking buffer, performance figures, retention.

See ``docs/metrics.md`` for the rules; :class:`MetricsService` is ``Workspace.metrics``.
"""

from promptver.metrics.service import MetricsService, example_csv, parse_window

__all__ = ["MetricsService", "example_csv", "parse_window"]
