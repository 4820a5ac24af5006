"""Capacity reports: forecast every configured resource signal against its limit, and render.

`build_report` reads each signal's history (and its limit, when the limit is a query), forecasts
all of them at once (`fleet`), then works out the crossing dates, the crossing probability
within the lead time and, for load signals, the replicas needed. The result renders as JSON
(the stored record), Markdown (for chat and tickets) and one self-contained HTML page with a
plot per signal: history, forecast mean and 80/95% bands, the limit and the crossing markers,
titled with the chosen model and its backtest error over seasonal naive's; each section says
the forecast's own accuracy (that ratio and how often its bands held).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from controlplane.capacity.fleet import ForecastJob, ForecastResult, forecast_fleet
from controlplane.config import CapacitySettings, CapacitySignalSettings, CostSettings
from controlplane.domain.errors import ControlPlaneError, QueryError
from controlplane.domain.series import MetricSeries, utc
from forecasters.base import Forecast
from forecasters.capacity import Crossing, ReplicaPlan, crossing, recommend_replicas

#: Reads one PromQL query over [start, end] at a step: what `PrometheusCollector.query_range` does.
Fetch = Callable[[str, datetime, datetime, int], list[MetricSeries]]
#: History shown in a plot before the forecast (the forecast itself is drawn whole).
PLOTTED_HISTORY = 3


#: Hours in an average month (365.25 x 24 / 12), for monthly figures.
MONTH_HOURS = 730.5


@dataclass(frozen=True)
class ReplicaCost:
    """The price of the replicas running now and of those recommended."""

    currency: str
    per_replica_hour: float
    current: int
    needed: int

    @property
    def now_per_hour(self) -> float:
        return self.current * self.per_replica_hour

    @property
    def needed_per_hour(self) -> float:
        return self.needed * self.per_replica_hour

    @property
    def added_per_hour(self) -> float:
        return self.needed_per_hour - self.now_per_hour

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "per_replica_hour": self.per_replica_hour,
            "now_per_hour": self.now_per_hour,
            "needed_per_hour": self.needed_per_hour,
            "added_per_hour": self.added_per_hour,
            "added_per_month": self.added_per_hour * MONTH_HOURS,
        }

    def describe(self) -> str:
        sign = "+" if self.added_per_hour >= 0 else "-"
        return (
            f"{sign}{abs(self.added_per_hour):.2f} {self.currency}/h, "
            f"{sign}{abs(self.added_per_hour) * MONTH_HOURS:.0f} {self.currency}/month"
        )


@dataclass
class Outlook:
    """One signal's forecast against its limit (or why there is none)."""

    signal: CapacitySignalSettings
    history: MetricSeries | None = None
    limit: float | None = None
    forecast: Forecast | None = None
    crossing: Crossing | None = None
    replicas: ReplicaPlan | None = None
    #: What the replicas cost now and recommended, per hour (when the cost model prices them).
    cost: ReplicaCost | None = None
    error: str | None = None

    @property
    def risk(self) -> float:
        return self.crossing.probability if self.crossing else -1.0

    def as_dict(self) -> dict[str, Any]:
        signal = self.signal
        out: dict[str, Any] = {
            "signal": signal.name,
            "service": signal.service,
            "resource": signal.resource,
            "query": signal.query,
            "unit": signal.unit,
            "limit": self.limit,
            "error": self.error,
            "crossing": self.crossing.as_dict() if self.crossing else None,
            "replicas": self.replicas.as_dict() if self.replicas else None,
            "cost": self.cost.as_dict() if self.cost else None,
            "model": self.forecast.summary() if self.forecast else None,
            "current": _last(self.history) if self.history is not None else None,
        }
        if self.history is not None:
            recent = _tail(self.history)
            out["history"] = {
                "timestamps": [utc(t).isoformat() for t in recent.timestamps],
                "values": [None if np.isnan(v) else round(float(v), 6) for v in recent.values],
            }
        if self.forecast is not None:
            frame = self.forecast.frame()
            out["forecast"] = {
                "timestamps": [utc(t).isoformat() for t in self.forecast.timestamps],
                **{c: _rounded(frame[c].to_numpy()) for c in frame.columns if c != "timestamp"},
            }
        return out


@dataclass
class CapacityReport:
    generated_at: datetime
    settings: CapacitySettings
    outlooks: list[Outlook]

    @property
    def at_risk(self) -> list[Outlook]:
        return [o for o in self.outlooks if o.crossing and o.crossing.at_risk]

    def ranked(self) -> list[Outlook]:
        """Riskiest first; signals without a forecast last."""
        return sorted(self.outlooks, key=lambda o: (-o.risk, o.signal.service, o.signal.name))

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "capacity",
            "generated_at": self.generated_at.isoformat(),
            "horizon_seconds": self.settings.horizon_seconds,
            "lead_seconds": self.settings.lead_seconds,
            "step_seconds": self.settings.step_seconds,
            "signals": len(self.outlooks),
            "at_risk": len(self.at_risk),
            "failed": sum(o.error is not None for o in self.outlooks),
            "outlooks": [o.as_dict() for o in self.ranked()],
        }

    def markdown(self) -> str:
        lead = _duration(self.settings.lead_seconds)
        lines = [
            f"# Capacity forecast, {self.generated_at:%Y-%m-%d %H:%M} UTC",
            "",
            f"{len(self.outlooks)} signals, {len(self.at_risk)} at risk within {lead}, "
            f"horizon {_duration(self.settings.horizon_seconds)}.",
            "",
            "| service | signal | model (error / seasonal naive's) | now | limit | mean crosses | "
            f"risk date | P(cross in {lead}) | replicas |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for o in self.ranked():
            lines.append("| " + " | ".join(_cells(o)) + " |")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        rows = "".join(
            f"<tr class='{_row_class(o)}'>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(o))
            + "</tr>"
            for o in self.ranked()
        )
        sections = "".join(_section(o, self.settings) for o in self.ranked())
        lead = _duration(self.settings.lead_seconds)
        title = f"Capacity forecast, {self.generated_at:%Y-%m-%d %H:%M} UTC"
        return _PAGE.format(
            title=html.escape(title),
            summary=html.escape(
                f"{len(self.outlooks)} signals, {len(self.at_risk)} at risk within {lead}; "
                f"horizon {_duration(self.settings.horizon_seconds)}."
            ),
            lead=html.escape(lead),
            rows=rows,
            sections=sections,
        )


def build_report(
    settings: CapacitySettings,
    fetch: Fetch,
    now: datetime,
    *,
    dask_address: str | Any | None = None,
    workers: int | None = None,
    on_progress: Callable[[str], None] = lambda step: None,
    cost: CostSettings | None = None,
) -> CapacityReport:
    """Fetch, forecast and assess every signal; a failing signal is reported, not fatal.
    With `cost`, replica recommendations carry what they cost."""
    outlooks = [Outlook(signal) for signal in settings.signals]
    start = now - timedelta(seconds=settings.history_seconds)
    for outlook in outlooks:
        _load(outlook, fetch, start, now, settings.step_seconds)
        on_progress("fetched")
    ready = [o for o in outlooks if o.error is None and o.history is not None]
    horizon = max(1, math.ceil(settings.horizon_seconds / settings.step_seconds))
    jobs = [
        ForecastJob(
            o.signal.name,
            o.history,  # type: ignore[arg-type]
            horizon,
            o.signal.model,
            params=o.signal.model_params,
        )
        for o in ready
    ]

    def done(result: ForecastResult) -> None:
        on_progress("forecast")

    results = forecast_fleet(jobs, dask_address=dask_address, workers=workers, on_done=done)
    for outlook, result in zip(ready, results, strict=True):
        _assess(outlook, result, settings)
        if cost is not None:
            outlook.cost = _priced(outlook, cost)
    return CapacityReport(now, settings, outlooks)


def _priced(outlook: Outlook, cost: CostSettings) -> ReplicaCost | None:
    plan, wanted = outlook.replicas, outlook.signal.replicas
    if plan is None or wanted is None:
        return None
    price = cost.replica_price(wanted.workload, wanted.cpu_cores, wanted.memory_gib)
    if price is None:
        return None
    return ReplicaCost(cost.currency, price, plan.current, plan.needed)


def _load(outlook: Outlook, fetch: Fetch, start: datetime, end: datetime, step: int) -> None:
    signal = outlook.signal
    try:
        outlook.history = _one(signal.query, fetch(signal.query, start, end, step))
        if signal.limit_query:
            recent = _one(
                signal.limit_query, fetch(signal.limit_query, end - timedelta(hours=1), end, 60)
            )
            outlook.limit = _last(recent)
            if outlook.limit is None:
                raise QueryError(
                    f"limit_query {signal.limit_query!r} has no value in the last hour"
                )
        else:
            outlook.limit = signal.limit
    except ControlPlaneError as exc:
        outlook.error = str(exc)


def _one(query: str, found: list[MetricSeries]) -> MetricSeries:
    if len(found) != 1:
        what = "no series" if not found else f"{len(found)} series"
        raise QueryError(
            f"query {query!r} returned {what}; a capacity signal needs exactly one "
            "(aggregate it, e.g. with sum or max)"
        )
    return found[0]


def _assess(outlook: Outlook, result: ForecastResult, settings: CapacitySettings) -> None:
    if result.forecast is None:
        outlook.error = result.error
        return
    outlook.forecast = result.forecast
    if outlook.limit is None:  # _load sets it for every signal that reaches the fleet
        raise ValueError(f"{outlook.signal.name}: no limit")
    outlook.crossing = crossing(result.forecast, outlook.limit, settings.lead_seconds)
    replicas = outlook.signal.replicas
    if replicas is not None:
        outlook.replicas = recommend_replicas(
            result.forecast,
            capacity_per_replica=replicas.capacity_per_replica,
            current_replicas=replicas.current,
            current_load=_last(outlook.history) or 0.0,
            target_utilization=replicas.target_utilization,
            min_replicas=replicas.min,
            max_replicas=replicas.max,
            plan_for=replicas.plan_for,
        )


# -- rendering --------------------------------------------------------------------------------
def _cells(o: Outlook) -> list[str]:
    signal, unit = o.signal, f" {o.signal.unit}".rstrip()
    if o.error is not None or o.forecast is None or o.crossing is None:
        return [signal.service, signal.name, f"no forecast: {o.error}", "", "", "", "", "", ""]
    model = o.forecast.model + _relative(o.forecast)
    if o.forecast.fallback:
        model += " fallback"
    now = _last(o.history) if o.history is not None else None
    replicas = f"{o.replicas.current} → {o.replicas.needed}" if o.replicas else ""
    if o.cost is not None:
        replicas += f" ({o.cost.describe()})"
    return [
        signal.service,
        signal.name,
        model,
        f"{now:.4g}{unit}" if now is not None else "",
        f"{o.limit:.4g}{unit}",
        _date(o.crossing.mean_at),
        _date(o.crossing.risk_at),
        f"{100 * o.crossing.probability:.0f}%",
        replicas,
    ]


def _relative(forecast: Forecast) -> str:
    """` (0.62x naive)`: the backtest error over seasonal naive's, or nothing untested."""
    backtest = forecast.backtest
    if backtest is None or not np.isfinite(backtest.relative):
        return ""
    return f" ({backtest.relative:.2f}x naive)"


def _row_class(o: Outlook) -> str:
    if o.error is not None or o.crossing is None:
        return "failed"
    return "risk" if o.crossing.at_risk else "ok"


def _section(o: Outlook, settings: CapacitySettings) -> str:
    title = html.escape(f"{o.signal.service} / {o.signal.name}")
    if o.forecast is None or o.history is None or o.limit is None:
        return (
            f"<section><h2>{title}</h2><p class='failed'>{html.escape(str(o.error))}</p></section>"
        )
    facts = [f"query <code>{html.escape(o.signal.query)}</code>"]
    if o.forecast.backtest:
        facts.append(f"accuracy: {html.escape(o.forecast.backtest.describe())}")
    if o.forecast.fallback:
        facts.append(f"fallback: {html.escape(o.forecast.fallback)}")
    if o.forecast.guard:
        facts.append(html.escape(o.forecast.guard))
    if o.forecast.weights:
        blend = ", ".join(f"{k} {v:.2f}" for k, v in o.forecast.weights.items())
        facts.append(f"blend of: {html.escape(blend)}")
    if o.forecast.candidates:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(o.forecast.candidates.items()))
        facts.append(f"backtest MASE of candidates: {html.escape(scores)}")
    if o.replicas:
        r = o.replicas
        facts.append(
            f"replicas {r.current} → {r.needed} (peak {r.peak_load:.4g} on {_date(r.peak_at)}, "
            f"headroom now {100 * r.headroom_now:.0f}%, at peak {100 * r.headroom_at_peak:.0f}%)"
        )
    if o.cost:
        c = o.cost
        facts.append(
            f"cost {c.now_per_hour:.2f} → {c.needed_per_hour:.2f} "
            f"{html.escape(c.currency)}/h ({html.escape(c.describe())})"
        )
    items = "".join(f"<li>{fact}</li>" for fact in facts)
    image = _plot(o, o.forecast, o.history, o.limit, settings)
    return (
        f"<section><h2>{title}</h2><img alt='forecast of {title}' "
        f"src='data:image/png;base64,{image}'/><ul>{items}</ul></section>"
    )


def _plot(
    o: Outlook, forecast: Forecast, history: MetricSeries, limit: float, settings: CapacitySettings
) -> str:
    """The signal's plot as a base64 PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    shown = history.timestamps >= history.timestamps[-1] - np.timedelta64(PLOTTED_HISTORY, "D")
    figure, axes = plt.subplots(figsize=(9, 3.2), dpi=90)
    axes.plot(history.timestamps[shown], history.values[shown], color="#444", lw=1, label="history")
    for level, colour in ((95, "#9ecae1"), (80, "#4292c6")):
        axes.fill_between(
            forecast.timestamps,
            forecast.lo(level),
            forecast.hi(level),
            color=colour,
            alpha=0.5,
            label=f"{level}%",
        )
    axes.plot(forecast.timestamps, forecast.mean, color="#08519c", lw=1.5, label="forecast")
    axes.axhline(limit, color="#cb181d", ls="--", lw=1.2, label=f"limit {limit:.4g}")
    lead_end = forecast.timestamps[0] + np.timedelta64(settings.lead_seconds, "s")
    axes.axvspan(forecast.timestamps[0], lead_end, color="#fdd0a2", alpha=0.25, label="lead time")
    if o.crossing and o.crossing.risk_at is not None:
        risk_at = utc(o.crossing.risk_at)
        axes.axvline(risk_at, color="#fd8d3c", lw=1.2, label="risk date")  # type: ignore[arg-type]
    if o.crossing and o.crossing.mean_at is not None:
        axes.plot([o.crossing.mean_at], [limit], "o", color="#cb181d", label="mean crosses")
    title = f"{o.signal.service} / {o.signal.name}: {forecast.model}{_relative(forecast)}"
    axes.set_title(title, fontsize=10)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    axes.set_ylabel(o.signal.unit or o.signal.resource)
    axes.legend(fontsize=7, loc="upper left", ncol=4)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _tail(series: MetricSeries, points: int = 500) -> MetricSeries:
    """The last PLOTTED_HISTORY days of a series, at most `points` of them (evenly thinned)."""
    start = series.timestamps[-1] - np.timedelta64(PLOTTED_HISTORY, "D")
    keep = np.flatnonzero(series.timestamps >= start)
    keep = keep[:: max(1, len(keep) // points)]
    return MetricSeries(series.name, series.timestamps[keep], series.values[keep])


def _last(series: MetricSeries | None) -> float | None:
    if series is None:
        return None
    known = series.values[~np.isnan(series.values)]
    return float(known[-1]) if len(known) else None


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _date(stamp: np.datetime64 | None) -> str:
    return "—" if stamp is None else f"{utc(stamp):%Y-%m-%d %H:%M}"


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 14px; }}
th {{ background: #f3f3f3; }}
tr.risk td {{ background: #fee0d2; }}
tr.failed td, p.failed {{ color: #a50f15; }}
section {{ margin-bottom: 2rem; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<table>
<tr><th>service</th><th>signal</th><th>model (error / seasonal naive's)</th><th>now</th>
<th>limit</th>
<th>mean crosses</th><th>risk date</th><th>P(cross in {lead})</th><th>replicas</th></tr>
{rows}
</table>
{sections}
</body></html>
"""
