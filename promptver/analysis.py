"""Experiment results: from an :class:`~promptver.models.Experiment` and its events to
:class:`~promptver.models.ExperimentResults`.

One call reads the experiment's events once (``promptver.store.stats``: SQL down to sufficient
statistics and bootstrap units), then computes in ``promptver.stats``, for every metric of the
experiment: per-variant means per event with CIs; each treatment against the control (Welch / delta
method, or the always-valid confidence sequence in sequential mode; Holm across treatments); the
bootstrap intervals beside the analytic ones; power; guardrails; p95 latency; SRM; and the winner
rule. Results are deterministic: the bootstrap's generator is seeded from the settings.

Used by the CLI (``experiment results``), the dashboard's results view and the reports.

This module reads and runs the analysis (:class:`_Analysis`: options, metrics, comparisons,
the bootstrap of means); its parts are the p95 bootstrap (:mod:`promptver.analysis_quantile`),
the guardrails and the winner rule (:mod:`promptver.analysis_winner`), the power figures
(:mod:`promptver.analysis_power`), and the "More statistics" readouts
(:mod:`promptver.analysis_more`, :mod:`promptver.analysis_bandit`).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np

from promptver import analysis_more as more
from promptver import stats as st
from promptver.analysis_power import plan_power as plan_power  # re-exported: ui
from promptver.analysis_power import power_for
from promptver.analysis_quantile import QUANTILE_METRIC, UNCAPPED, QuantileBootstrap
from promptver.analysis_winner import WinnerRule
from promptver.analysis_winner import p_text as p_text  # re-exported: cli, reports, ui
from promptver.clock import utcnow
from promptver.errors import Problem, SourceError, ValidationError
from promptver.models.experiments import BINARY_METRICS, Experiment, MetricSpec
from promptver.models.results import (
    BootstrapInfo,
    ComparisonResult,
    ExperimentResults,
    Inference,
    MetricResult,
    SRMResult,
    VariantResult,
    WinsorInfo,
)
from promptver.store import stats as sql

if TYPE_CHECKING:
    from promptver.config import Settings
    from promptver.sources import EventReader, EventSource
    from promptver.store.db import Database


class WorkspaceLike(Protocol):
    """What the analysis reads of a :class:`promptver.workspace.Workspace`, named by shape: the
    workspace imports the services, not the other way round."""

    settings: Settings
    db: Database
    #: where the events live (a workspace without one reads the promptver file)
    source: EventSource


#: metrics that winsorisation caps (long right tails: a few slow or expensive calls)
WINSORIZABLE = ("latency_ms", "cost_usd")
#: hashed user buckets per arm for the bootstrap of large arms (the bucket bootstrap's interval
#: widths carry a relative error of about 1/sqrt(2 · buckets), 2 % here)
DEFAULT_BUCKETS = 1000
#: arms up to this many users are resampled user by user
DEFAULT_USER_LIMIT = 2000


@dataclass(frozen=True)
class Options:
    """How to analyse (resolved from the settings and the caller's overrides)."""

    sequential: bool
    sequential_tuning_n: int
    winsorize: bool
    winsorize_percentile: float
    resamples: int
    seed: int
    target_lift: float | None
    power: float
    buckets: int
    user_limit: int


def experiment_results(
    ws: WorkspaceLike,
    experiment: Experiment,
    metric: str | None = None,
    *,
    sequential: bool | None = None,
    winsorize: bool | None = None,
    resamples: int | None = None,
    seed: int | None = None,
    target_lift: float | None = 0.05,
    power: float = 0.8,
    buckets: int = DEFAULT_BUCKETS,
    user_limit: int | None = None,
    now: datetime | None = None,
) -> ExperimentResults:
    """Analyse an experiment's events in its window.

    Args:
        ws: the workspace holding the events.
        experiment: the experiment (window from ``experiment.window()``, split from
            ``experiment.weights()``, metrics with their direction and role).
        metric: the metric the contract fields describe (default: the primary metric).
        sequential: always-valid confidence sequences (default: settings).
        winsorize: cap latency and cost at the settings' percentile over all arms (default:
            settings); the uncapped result is kept in ``uncapped``.
        resamples: bootstrap resamples (default: settings, 2,000).
        seed: bootstrap seed (default: settings).
        target_lift: relative lift the power figures plan for (0.05 = 5 %), ``None`` for none.
        power: wanted power of the planning figures.
        buckets: hashed user buckets per arm for the bootstrap of large arms.
        user_limit: when every arm has at most this many users, the bootstrap resamples users
            one by one (default 2,000).
        now: the current time for rates (tests).

    Raises:
        ValidationError: ``metric`` is not one of the experiment's metrics.
    """
    opts = make_options(
        ws,
        sequential=sequential,
        winsorize=winsorize,
        resamples=resamples,
        seed=seed,
        target_lift=target_lift,
        power=power,
        buckets=buckets,
        user_limit=user_limit,
    )
    check_metric(experiment, metric)
    # Values stored before metrics were bounded can overflow sums and resamples: they turn into
    # inf/nan, which the results report as "cannot be computed" — not as warnings.
    with _reader(ws) as rd, np.errstate(over="ignore", invalid="ignore"):
        return _Analysis(rd, experiment, opts, now or utcnow()).run(
            metric or experiment.primary_metric.name
        )


def make_options(
    ws: WorkspaceLike,
    *,
    sequential: bool | None = None,
    winsorize: bool | None = None,
    resamples: int | None = None,
    seed: int | None = None,
    target_lift: float | None = 0.05,
    power: float = 0.8,
    buckets: int = DEFAULT_BUCKETS,
    user_limit: int | None = None,
) -> Options:
    """The analysis options: the caller's, else the settings' (see :func:`experiment_results`).

    Raises:
        ValidationError: ``power`` is not between 0 and 1.
    """
    cfg = ws.settings.ab_testing.statistical_analysis
    if not 0 < power < 1:
        raise ValidationError(
            "power must be between 0 and 1 (e.g. 0.8)",
            [Problem("must be between 0 and 1", field="power")],
        )
    return Options(
        sequential=cfg.sequential if sequential is None else bool(sequential),
        sequential_tuning_n=cfg.sequential_tuning_n,
        winsorize=cfg.winsorize if winsorize is None else bool(winsorize),
        winsorize_percentile=cfg.winsorize_percentile,
        resamples=cfg.bootstrap_resamples if resamples is None else int(resamples),
        seed=cfg.bootstrap_seed if seed is None else int(seed),
        target_lift=target_lift,
        power=power,
        buckets=buckets,
        user_limit=DEFAULT_USER_LIMIT if user_limit is None else user_limit,
    )


def _reader(ws: WorkspaceLike) -> AbstractContextManager[EventReader]:
    """A read block of the workspace's event source (the promptver file by default)."""
    source = getattr(ws, "source", None)
    if source is None:
        from promptver.sources import file_reader

        return file_reader(ws.db)
    return source.reader()


def check_metric(experiment: Experiment, metric: str | None) -> None:
    """Refuse a metric the experiment does not watch, naming the ones it does."""
    if metric is None or experiment.metric(metric) is not None:
        return
    known = ", ".join(m.name for m in experiment.metrics)
    raise ValidationError(
        f"metric {metric!r} is not a metric of experiment {experiment.name!r}; use one of: {known}",
        [Problem(f"unknown metric {metric!r} (known: {known})", field="metric")],
    )


def role_of(experiment: Experiment, spec: MetricSpec) -> str:
    """The first metric is the primary one whatever its declared role."""
    if experiment.metrics and spec.name == experiment.metrics[0].name:
        return "primary"
    return "guardrail" if spec.role == "guardrail" else "secondary"


def bad_alternative(direction: str) -> st.Alternative:
    """The one-sided alternative in which a metric gets worse."""
    return "greater" if direction == "lower" else "less"


class _Analysis(QuantileBootstrap, WinnerRule):
    """One analysis: reads through ``rd`` (inside the caller's read block) and computes."""

    def __init__(
        self, rd: EventReader | sql.Con, experiment: Experiment, opts: Options, now: datetime
    ) -> None:
        if isinstance(rd, sql.Con):  # a connection to the promptver file (segments)
            from promptver.sources.file import FileReader

            rd = FileReader(rd)
        self.rd: EventReader = rd
        #: the promptver file's connection when the events are there (bandit weights and
        #: periods are read with them); None for an external source
        self.con: sql.Con | None = getattr(rd, "con", None)
        self.exp = experiment
        self.opts = opts
        self.now = now
        self.names = [v.name for v in experiment.variants]
        self.weights = experiment.weights()
        start, end = experiment.window()
        self.start, self.end = start, end
        self.flt = sql.EventFilter(experiment.id, tuple(self.names), start, end)
        self.alpha = experiment.alpha

    # -- the whole analysis -----------------------------------------------------------------
    def plan_columns(self) -> tuple[dict[str, float | None], list[sql.MetricColumn]]:
        """The winsorisation caps and the metric columns to reduce (capped and uncapped)."""
        opts = self.opts
        metric_names = [m.name for m in self.exp.metrics]
        caps: dict[str, float | None] = {}
        if opts.winsorize and opts.winsorize_percentile < 100:
            wins = [m for m in metric_names if m in WINSORIZABLE]
            caps = self.rd.pooled_quantiles(self.flt, wins, opts.winsorize_percentile / 100)
        columns: list[sql.MetricColumn] = []
        for m in metric_names:
            columns.append(sql.MetricColumn(m, m, caps.get(m)))
            if caps.get(m) is not None:
                columns.append(sql.MetricColumn(m + UNCAPPED, m, None))
        return caps, columns

    def covariate(self) -> sql.CovariateWindow | None:
        """CUPED's pre-period (None when CUPED is off or the window has no start yet)."""
        days = self.exp.cuped_lookback_days
        if not days or self.start is None:
            return None
        return sql.CovariateWindow(
            self.exp.template_id, self.start - timedelta(days=days), self.start
        )

    def run(
        self,
        selected: str,
        *,
        planned: tuple[dict[str, float | None], list[sql.MetricColumn]] | None = None,
        sums: sql.ExperimentSums | None = None,
        quantile: bool = True,
    ) -> ExperimentResults:
        """The results; ``planned`` and ``sums`` come precomputed for a segment (one grouped
        pass for all segments), and ``quantile=False`` leaves out the p95 bootstrap."""
        exp, opts = self.exp, self.opts
        metric_names = [m.name for m in exp.metrics]
        caps, columns = planned if planned is not None else self.plan_columns()
        self.columns = columns
        self.col_index = {c.key: i for i, c in enumerate(columns)}
        self.with_quantile = quantile
        if sums is None and quantile and QUANTILE_METRIC in metric_names:
            self._quantile_prefetch(QUANTILE_METRIC, opts.buckets)
        self.sums = sums or self.rd.experiment_sums(
            self.flt,
            columns,
            buckets=opts.buckets,
            user_limit=opts.user_limit,
            covariate=self.covariate(),
        )
        unknown_n, unknown_names = self.sums.unknown_events, self.sums.unknown_variants
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="promptver-stats") as pool:
            self.pool = pool
            self._start_bootstrap()
            # the p95 queries run while the worker threads resample
            self._q_plan = (
                self._quantile_fetch(QUANTILE_METRIC)
                if QUANTILE_METRIC in metric_names and quantile
                else None
            )
            metrics = self._metrics(caps)

        users = [self.sums.users[n] for n in self.names]
        srm_raw = st.srm_test(users, self.weights)
        srm = SRMResult(
            p_value=srm_raw.p_value,
            ok=srm_raw.ok,
            chi2=srm_raw.chi2,
            df=srm_raw.df,
            observed=dict(zip(self.names, srm_raw.observed)),
            expected=dict(zip(self.names, srm_raw.expected)),
            threshold=st.SRM_THRESHOLD,
        )
        self.bandit = None
        if exp.allocation == "bandit":
            from promptver.analysis_bandit import bandit_result

            if self.con is None:
                raise SourceError(
                    "bandit experiments are analysed from the promptver file's events only; "
                    "this workspace reads events from an external source (events.source)"
                )
            self.bandit, srm = bandit_result(self.con, exp, self.flt, self.alpha)
        sample_ok = bool(users) and min(users) >= exp.minimum_sample_size
        guardrails = self._guardrails(metrics)
        winner, reason = self._winner(metrics, srm, sample_ok, guardrails)

        notes: list[str] = []
        if sum(users) == 0:
            notes.append("no events for this experiment in its window yet" + self._window_text())
        else:
            notes += [
                f"variant {n!r} has no users yet" for n, u in zip(self.names, users) if u == 0
            ]
        if unknown_n:
            notes.append(
                f"{unknown_n} event(s) carry a variant that is not configured "
                f"({', '.join(repr(x) for x in unknown_names)}) and were ignored"
            )
        if self.bandit is not None:
            notes.append(self.bandit.caveat)
        if not srm.ok:
            notes.append(
                "sample ratio mismatch: users per variant "
                + ", ".join(f"{n} {u}" for n, u in zip(self.names, users))
                + " differ from the configured split "
                + ", ".join(f"{w:.0%}" for w in self.weights)
                + f" (chi-square {p_text(srm.p_value)} < {st.SRM_THRESHOLD:g}); check the "
                "assignment and the tracking before trusting these figures; no winner is named"
            )
        base = ExperimentResults(
            experiment_id=exp.id,
            status=exp.status,
            metric=metrics[0].metric,
            alpha=self.alpha,
            variants=metrics[0].variants,
            comparisons=metrics[0].comparisons,
            srm=srm,
            sample_size_ok=sample_ok,
            winner=winner,
            direction=metrics[0].direction,
            role=metrics[0].role,
            binary=metrics[0].binary,
            method="sequential" if opts.sequential else "fixed-horizon",
            primary_metric=exp.primary_metric.name,
            minimum_sample_size=exp.minimum_sample_size,
            window_start=self.start,
            window_end=self.end,
            computed_at=self.now,
            bootstrap=BootstrapInfo(
                resamples=opts.resamples,
                seed=opts.seed,
                unit=self.sums.unit_kind,
                units={n: self.sums.units[n].n_units for n in self.names},
            ),
            guardrails=guardrails,
            winner_reason=reason,
            experiment_messages=notes,
            metrics=metrics,
            engine=exp.engine,
            cuped_lookback_days=exp.cuped_lookback_days,
            bandit=self.bandit,
        )
        return base.select(selected)

    def _metrics(self, caps: dict[str, float | None]) -> list[MetricResult]:
        """Every metric's result (the capped one with its uncapped twin when winsorising)."""
        opts = self.opts
        metrics: list[MetricResult] = []
        for spec in self.exp.metrics:
            result = self._metric(spec, spec.name)
            if spec.name in caps and caps[spec.name] is not None:
                uncapped = self._metric(spec, spec.name + UNCAPPED)
                result = result.model_copy(
                    update={
                        "winsorized": WinsorInfo(
                            percentile=opts.winsorize_percentile, cap=caps[spec.name]
                        ),
                        "uncapped": uncapped,
                    }
                )
            elif spec.name in caps:
                result = result.model_copy(
                    update={
                        "winsorized": WinsorInfo(percentile=opts.winsorize_percentile, cap=None)
                    }
                )
            metrics.append(result)
        return metrics

    def _cuped(self, key: str, alternative: st.Alternative) -> dict:
        """Each treatment's CUPED comparison (Holm across treatments), when CUPED is on."""
        covs = self.sums.covariates
        if covs is None:
            return {}
        stats, control = self.sums.stats[key], self.names[0]
        out = {
            name: more.cuped_result(
                stats[control],
                covs[key][control],
                stats[name],
                covs[key][name],
                alpha=self.alpha,
                alternative=alternative,
                names=(control, name),
            )
            for name in self.names[1:]
        }
        adjusted = st.holm([r.p_value for r in out.values()])
        for (name, r), p_adj in zip(list(out.items()), adjusted):
            out[name] = r.model_copy(
                update={
                    "p_value_adjusted": p_adj,
                    "significant": p_adj is not None and p_adj < self.alpha,
                }
            )
        return out

    def _non_inferiority(self, spec: MetricSpec, role: str, c: st.Comparison) -> dict:
        if role != "guardrail" or spec.margin is None:
            return {}
        bound, ok = more.non_inferiority(c, spec.direction, spec.margin)
        return {"margin": spec.margin, "non_inferiority_bound": bound, "non_inferior": ok}

    def _window_text(self) -> str:
        if self.start is None and self.end is None:
            return ""
        start = self.start.isoformat() if self.start else "the beginning"
        end = self.end.isoformat() if self.end else "now"
        return f" ({start} to {end})"

    # -- bootstrap ----------------------------------------------------------------------------
    def _start_bootstrap(self) -> None:
        """Resample every arm in the worker threads (numpy releases the GIL), one seeded stream
        per arm, while the main thread goes on with SQL."""
        seqs = np.random.SeedSequence(self.opts.seed).spawn(len(self.names))
        self._boot_jobs: dict[str, Future] = {}
        self._boot_done: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, seq in zip(self.names, seqs):
            units = self.sums.units[name]
            if units.n_units == 0:
                continue
            self._boot_jobs[name] = self.pool.submit(
                st.bootstrap_arm, units, self.opts.resamples, np.random.default_rng(seq)
            )
        self.boot_cmp: dict[tuple[str, float], st.BootstrapComparison] = {}

    def _arm(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(count matrix, resampled means) of an arm, or None when it has no units."""
        if name not in self._boot_done:
            job = self._boot_jobs.get(name)
            if job is None:
                return None
            self._boot_done[name] = job.result()
        return self._boot_done[name]

    def _boot_comparison(self, treatment: str, alpha: float) -> st.BootstrapComparison | None:
        control = self.names[0]
        arm_c, arm_t = self._arm(control), self._arm(treatment)
        if arm_c is None or arm_t is None:
            return None
        key = (treatment, alpha)
        if key not in self.boot_cmp:
            self.boot_cmp[key] = st.bootstrap_compare(
                self.sums.units[control], self.sums.units[treatment], arm_c[1], arm_t[1], alpha
            )
        return self.boot_cmp[key]

    # -- one metric ---------------------------------------------------------------------------
    def _metric(self, spec: MetricSpec, key: str) -> MetricResult:
        alpha, opts = self.alpha, self.opts
        role = role_of(self.exp, spec)
        j = self.col_index[key]
        stats = self.sums.stats[key]
        messages: list[str] = []
        variants = []
        for name, weight in zip(self.names, self.weights):
            s = stats[name]
            summ = st.summarise(s, alpha, name=f"variant {name!r}")
            blo = bhi = None
            arm = self._arm(name)
            if arm is not None:
                lo, hi = st.percentile_interval(arm[1][:, j], alpha)
                blo, bhi = st.finite(lo), st.finite(hi)
            variants.append(
                VariantResult(
                    name=name,
                    users=self.sums.users[name],
                    events=summ.events,
                    mean=summ.mean,
                    std=summ.std,
                    ci_low=summ.ci_low,
                    ci_high=summ.ci_high,
                    weight=weight,
                    metric_users=summ.users,
                    se=summ.se,
                    bootstrap_ci_low=blo,
                    bootstrap_ci_high=bhi,
                    message=summ.message,
                )
            )
            if summ.message and self.sums.users[name] > 0:
                messages.append(summ.message)

        alternative: st.Alternative = (
            bad_alternative(spec.direction) if role == "guardrail" else "two-sided"
        )
        tuning = 2 * opts.sequential_tuning_n  # the setting is per arm; n counts both arms
        control = self.names[0]
        raw = []
        for name in self.names[1:]:
            fixed = st.compare(
                stats[control],
                stats[name],
                alpha=alpha,
                alternative=alternative,
                names=(control, name),
            )
            seq = st.compare(
                stats[control],
                stats[name],
                alpha=alpha,
                alternative=alternative,
                sequential_tuning_n=tuning,
                names=(control, name),
            )
            raw.append((name, fixed, seq))
        chosen = [seq if opts.sequential else fixed for _, fixed, seq in raw]
        adjusted = st.holm([c.p_value for c in chosen])
        cuped = self._cuped(key, alternative)
        comparisons = []
        boot_alpha = 2 * alpha if alternative != "two-sided" else alpha
        for (name, fixed, seq), c, p_adj in zip(raw, chosen, adjusted):
            boot = self._boot_comparison(name, boot_alpha)
            significant = p_adj is not None and p_adj < alpha
            comparisons.append(
                ComparisonResult(
                    control=control,
                    treatment=name,
                    diff=c.diff,
                    ci_low=c.ci_low,
                    ci_high=c.ci_high,
                    relative_lift=c.relative_lift,
                    p_value=c.p_value,
                    p_value_adjusted=p_adj,
                    significant=significant,
                    effect_size=c.effect_size,
                    bootstrap_ci_low=_at(boot, "diff_low", j),
                    bootstrap_ci_high=_at(boot, "diff_high", j),
                    alternative=alternative,
                    method="sequential" if opts.sequential else "fixed-horizon",
                    confidence=c.confidence,
                    se=c.se,
                    df=c.df,
                    t_stat=c.t,
                    relative_lift_ci_low=c.relative_lift_ci_low,
                    relative_lift_ci_high=c.relative_lift_ci_high,
                    bootstrap_bca_ci_low=_at(boot, "bca_low", j),
                    bootstrap_bca_ci_high=_at(boot, "bca_high", j),
                    bootstrap_relative_lift_ci_low=_at(boot, "lift_low", j),
                    bootstrap_relative_lift_ci_high=_at(boot, "lift_high", j),
                    verdict=_verdict(c, significant, spec.direction),
                    fixed_horizon=_inference(fixed),
                    sequential=_inference(seq),
                    message=c.message,
                    bayesian=more.bayesian_result(fixed, spec.direction, alpha),
                    cuped=cuped.get(name),
                    **self._non_inferiority(spec, role, c),
                )
            )
            if c.message and stats[control].sum_y and stats[name].sum_y:
                messages.append(f"{name} vs {control}: {c.message}")
        elapsed = None
        if self.start is not None:
            elapsed = ((self.end or self.now) - self.start).total_seconds() / 86400
        power = [
            power_for(
                variants[0],
                variants[self.names.index(c.treatment)],
                c,
                role=role,
                n_comparisons=len(comparisons),
                alpha=alpha,
                power=opts.power,
                target_lift=opts.target_lift,
                minimum_sample_size=self.exp.minimum_sample_size,
                elapsed_days=elapsed,
            )
            for c in comparisons
        ]
        quantile = None
        if spec.name == QUANTILE_METRIC and not key.endswith(UNCAPPED) and self.with_quantile:
            quantile = self._quantile(spec.name)
        return MetricResult(
            metric=spec.name,
            direction=spec.direction,
            role=role,
            binary=spec.name in BINARY_METRICS,
            variants=variants,
            comparisons=comparisons,
            power=power,
            quantile=quantile,
            messages=list(dict.fromkeys(messages)),
        )


def results_fingerprint(ws: WorkspaceLike, experiment: Experiment) -> tuple:
    """A cheap value that changes when the experiment's events change (for caches)."""
    with _reader(ws) as rd:
        return (experiment.model_dump_json(), *rd.events_fingerprint(experiment.id))


def _at(boot: st.BootstrapComparison | None, name: str, j: int) -> float | None:
    if boot is None:
        return None
    return st.finite(getattr(boot, name)[j])


def _inference(c: st.Comparison) -> Inference:
    return Inference(
        p_value=c.p_value,
        ci_low=c.ci_low,
        ci_high=c.ci_high,
        relative_lift_ci_low=c.relative_lift_ci_low,
        relative_lift_ci_high=c.relative_lift_ci_high,
    )


def _verdict(c: st.Comparison, significant: bool, direction: str) -> str:
    if c.p_value is None:
        return "not tested"
    if not significant:
        return "inconclusive"
    if c.alternative != "two-sided":
        return "worse"
    good = (c.diff or 0) > 0 if direction == "higher" else (c.diff or 0) < 0
    return "better" if good else "worse"
