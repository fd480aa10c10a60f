"""The shapes promptver stores and returns (pydantic, ``extra="forbid"``), by capability.

Models are plain data: services build them, the store reads and writes them, the CLI and the HTTP
API serialise them with ``model_dump(mode="json")``. Each submodule holds one capability's shapes:

- :mod:`~promptver.models.core`: names, commits, templates, branches, the log, :class:`Prompt`
- :mod:`~promptver.models.experiments`: experiment definitions and routing assignments
- :mod:`~promptver.models.versioning`: merges, fsck, the commit graph
- :mod:`~promptver.models.deployments`: deployments, gate reports, what is live
- :mod:`~promptver.models.metrics`: metric events, CSV imports, performance figures
- :mod:`~promptver.models.results`: experiment results (the statistics engine's output)
- :mod:`~promptver.models.trends`: trends, change points, alert rules and alerts
- :mod:`~promptver.models.overview`: the Home screen's overview

``from promptver.models import X`` still works for every name: the package loads only the
submodule that defines ``X`` (an application that serves prompts never builds the ~40 classes of
results, trends and imports). Code inside promptver imports from the submodule itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: where each public name lives
_HOME: dict[str, str] = {
    "Branch": "core",
    "Commit": "core",
    "LogEntry": "core",
    "Model": "core",
    "NAME_RE": "core",
    "Prompt": "core",
    "Template": "core",
    "VERSION_RE": "core",
    "VersionLabel": "core",
    "_Compiled": "core",
    "check_name": "core",
    "Assignment": "experiments",
    "BINARY_METRICS": "experiments",
    "BUILTIN_METRICS": "experiments",
    "Experiment": "experiments",
    "ExperimentLogEntry": "experiments",
    "MetricSpec": "experiments",
    "VariantSpec": "experiments",
    "FsckProblem": "versioning",
    "FsckReport": "versioning",
    "GraphRow": "versioning",
    "MergeResult": "versioning",
    "Deployment": "deployments",
    "EnvironmentInfo": "deployments",
    "GateReport": "deployments",
    "GateResult": "deployments",
    "GateStatus": "deployments",
    "LiveCell": "deployments",
    "CsvColumn": "metrics",
    "CsvPreview": "metrics",
    "CsvWarning": "metrics",
    "ImportAttempt": "metrics",
    "ImportProblem": "metrics",
    "ImportRecord": "metrics",
    "ImportResult": "metrics",
    "MetricEvent": "metrics",
    "MetricStat": "metrics",
    "MetricsSummary": "metrics",
    "MetricsWritten": "metrics",
    "PerformanceFigures": "metrics",
    "PurgeResult": "metrics",
    "BanditComparison": "results",
    "BanditResult": "results",
    "BanditWeights": "results",
    "BayesianResult": "results",
    "BootstrapInfo": "results",
    "ComparisonResult": "results",
    "CupedResult": "results",
    "ExperimentResults": "results",
    "GuardrailCheck": "results",
    "HeterogeneityResult": "results",
    "Inference": "results",
    "MetricResult": "results",
    "PowerResult": "results",
    "QuantileComparison": "results",
    "QuantileResult": "results",
    "QuantileVariant": "results",
    "SRMResult": "results",
    "SegmentResult": "results",
    "SegmentedResults": "results",
    "VariantResult": "results",
    "WinsorInfo": "results",
    "Alert": "trends",
    "AlertCheck": "trends",
    "AlertGroup": "trends",
    "AlertRule": "trends",
    "ChangeMetric": "trends",
    "ChangePoint": "trends",
    "Comparator": "trends",
    "DeploymentMarker": "trends",
    "TrendFit": "trends",
    "TrendPoint": "trends",
    "TrendReport": "trends",
    "TrendSeries": "trends",
    "ExperimentProgress": "overview",
    "Overview": "overview",
    "RecentCommit": "overview",
    "VariantProgress": "overview",
    "WorkspaceCounts": "overview",
}

__all__ = sorted(n for n in _HOME if not n.startswith("_"))


def __getattr__(name: str) -> Any:
    mod = _HOME.get(name)
    if mod is None:
        raise AttributeError(f"module 'promptver.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"promptver.models.{mod}"), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


if TYPE_CHECKING:
    from promptver.models.core import (
        NAME_RE as NAME_RE,
    )
    from promptver.models.core import (
        VERSION_RE as VERSION_RE,
    )
    from promptver.models.core import (
        Branch as Branch,
    )
    from promptver.models.core import (
        Commit as Commit,
    )
    from promptver.models.core import (
        LogEntry as LogEntry,
    )
    from promptver.models.core import (
        Model as Model,
    )
    from promptver.models.core import (
        Prompt as Prompt,
    )
    from promptver.models.core import (
        Template as Template,
    )
    from promptver.models.core import (
        VersionLabel as VersionLabel,
    )
    from promptver.models.core import (
        _Compiled as _Compiled,
    )
    from promptver.models.core import (
        check_name as check_name,
    )
    from promptver.models.deployments import (
        Deployment as Deployment,
    )
    from promptver.models.deployments import (
        EnvironmentInfo as EnvironmentInfo,
    )
    from promptver.models.deployments import (
        GateReport as GateReport,
    )
    from promptver.models.deployments import (
        GateResult as GateResult,
    )
    from promptver.models.deployments import (
        GateStatus as GateStatus,
    )
    from promptver.models.deployments import (
        LiveCell as LiveCell,
    )
    from promptver.models.experiments import (
        BINARY_METRICS as BINARY_METRICS,
    )
    from promptver.models.experiments import (
        BUILTIN_METRICS as BUILTIN_METRICS,
    )
    from promptver.models.experiments import (
        Assignment as Assignment,
    )
    from promptver.models.experiments import (
        Experiment as Experiment,
    )
    from promptver.models.experiments import (
        ExperimentLogEntry as ExperimentLogEntry,
    )
    from promptver.models.experiments import (
        MetricSpec as MetricSpec,
    )
    from promptver.models.experiments import (
        VariantSpec as VariantSpec,
    )
    from promptver.models.metrics import (
        CsvColumn as CsvColumn,
    )
    from promptver.models.metrics import (
        CsvPreview as CsvPreview,
    )
    from promptver.models.metrics import (
        CsvWarning as CsvWarning,
    )
    from promptver.models.metrics import (
        ImportAttempt as ImportAttempt,
    )
    from promptver.models.metrics import (
        ImportProblem as ImportProblem,
    )
    from promptver.models.metrics import (
        ImportRecord as ImportRecord,
    )
    from promptver.models.metrics import (
        ImportResult as ImportResult,
    )
    from promptver.models.metrics import (
        MetricEvent as MetricEvent,
    )
    from promptver.models.metrics import (
        MetricsSummary as MetricsSummary,
    )
    from promptver.models.metrics import (
        MetricStat as MetricStat,
    )
    from promptver.models.metrics import (
        MetricsWritten as MetricsWritten,
    )
    from promptver.models.metrics import (
        PerformanceFigures as PerformanceFigures,
    )
    from promptver.models.metrics import (
        PurgeResult as PurgeResult,
    )
    from promptver.models.overview import (
        ExperimentProgress as ExperimentProgress,
    )
    from promptver.models.overview import (
        Overview as Overview,
    )
    from promptver.models.overview import (
        RecentCommit as RecentCommit,
    )
    from promptver.models.overview import (
        VariantProgress as VariantProgress,
    )
    from promptver.models.overview import (
        WorkspaceCounts as WorkspaceCounts,
    )
    from promptver.models.results import (
        BanditComparison as BanditComparison,
    )
    from promptver.models.results import (
        BanditResult as BanditResult,
    )
    from promptver.models.results import (
        BanditWeights as BanditWeights,
    )
    from promptver.models.results import (
        BayesianResult as BayesianResult,
    )
    from promptver.models.results import (
        BootstrapInfo as BootstrapInfo,
    )
    from promptver.models.results import (
        ComparisonResult as ComparisonResult,
    )
    from promptver.models.results import (
        CupedResult as CupedResult,
    )
    from promptver.models.results import (
        ExperimentResults as ExperimentResults,
    )
    from promptver.models.results import (
        GuardrailCheck as GuardrailCheck,
    )
    from promptver.models.results import (
        HeterogeneityResult as HeterogeneityResult,
    )
    from promptver.models.results import (
        Inference as Inference,
    )
    from promptver.models.results import (
        MetricResult as MetricResult,
    )
    from promptver.models.results import (
        PowerResult as PowerResult,
    )
    from promptver.models.results import (
        QuantileComparison as QuantileComparison,
    )
    from promptver.models.results import (
        QuantileResult as QuantileResult,
    )
    from promptver.models.results import (
        QuantileVariant as QuantileVariant,
    )
    from promptver.models.results import (
        SegmentedResults as SegmentedResults,
    )
    from promptver.models.results import (
        SegmentResult as SegmentResult,
    )
    from promptver.models.results import (
        SRMResult as SRMResult,
    )
    from promptver.models.results import (
        VariantResult as VariantResult,
    )
    from promptver.models.results import (
        WinsorInfo as WinsorInfo,
    )
    from promptver.models.trends import (
        Alert as Alert,
    )
    from promptver.models.trends import (
        AlertCheck as AlertCheck,
    )
    from promptver.models.trends import (
        AlertGroup as AlertGroup,
    )
    from promptver.models.trends import (
        AlertRule as AlertRule,
    )
    from promptver.models.trends import (
        ChangeMetric as ChangeMetric,
    )
    from promptver.models.trends import (
        ChangePoint as ChangePoint,
    )
    from promptver.models.trends import (
        Comparator as Comparator,
    )
    from promptver.models.trends import (
        DeploymentMarker as DeploymentMarker,
    )
    from promptver.models.trends import (
        TrendFit as TrendFit,
    )
    from promptver.models.trends import (
        TrendPoint as TrendPoint,
    )
    from promptver.models.trends import (
        TrendReport as TrendReport,
    )
    from promptver.models.trends import (
        TrendSeries as TrendSeries,
    )
    from promptver.models.versioning import (
        FsckProblem as FsckProblem,
    )
    from promptver.models.versioning import (
        FsckReport as FsckReport,
    )
    from promptver.models.versioning import (
        GraphRow as GraphRow,
    )
    from promptver.models.versioning import (
        MergeResult as MergeResult,
    )
