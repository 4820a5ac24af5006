"""Service level objectives: the error ratio of an SLI over a window, multi-window multi-burn-
rate alerts, the error budget left, and OpenSLO v1 import.

The burn-rate pairs are the Google SRE workbook's ("Alerting on SLOs", table 5-8): page when
the budget burns 14.4x too fast over 1 h and 5 min, or 6x over 6 h and 30 min; open a ticket at
3x over 1 d and 2 h, or 1x over 3 d and 6 h. Both windows of a pair must burn: the long one
says it matters, the short one that it is still happening.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from controlplane.config import SloSettings
from controlplane.domain.errors import ConfigError

WINDOW = "{{.window}}"
THRESHOLD_BAD = "aiops:slo_threshold_bad"
_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
#: Windows recorded for every SLO (the burn-rate pairs use them).
RECORDED = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnRateAlert:
    long: str
    short: str
    factor: float
    severity: str


#: Published (SRE workbook, table 5-8), not fitted.
BURN_RATE_ALERTS = (
    BurnRateAlert("1h", "5m", 14.4, "critical"),
    BurnRateAlert("6h", "30m", 6.0, "critical"),
    BurnRateAlert("1d", "2h", 3.0, "warning"),
    BurnRateAlert("3d", "6h", 1.0, "warning"),
)


def error_ratio(slo: SloSettings, window: str) -> str:
    """PromQL for the share of bad events (or bad time) over `window`."""
    if slo.total is not None:
        total = slo.total.replace(WINDOW, window)
        if slo.bad is not None:
            return f"({slo.bad.replace(WINDOW, window)}) / ({total})"
        assert slo.good is not None
        return f"1 - (({slo.good.replace(WINDOW, window)}) / ({total}))"
    return f'avg_over_time({THRESHOLD_BAD}{{slo="{slo.name}"}}[{window}])'


def threshold_bad(slo: SloSettings) -> str:
    """1 while a threshold SLI misses its threshold, 0 while it meets it (recorded each
    evaluation, so windows average a cheap series instead of re-running the query)."""
    assert slo.query is not None
    assert slo.value is not None
    return f"1 - (({slo.query}) {_OPS[slo.op]} bool {slo.value:g})"


def budget_window(slo: SloSettings) -> str:
    return f"{slo.window_days}d"


def rules(slos: list[SloSettings]) -> list[dict[str, Any]]:
    """Recording rules (error ratio per window, budget left) and burn-rate alerts."""
    out: list[dict[str, Any]] = []
    for slo in slos:
        labels = {"slo": slo.name, "service": slo.service}
        if slo.query is not None:
            out.append({"record": THRESHOLD_BAD, "expr": threshold_bad(slo), "labels": labels})
        windows = (*RECORDED, budget_window(slo))
        for window in windows:
            out.append(
                {
                    "record": f"aiops:slo_error_ratio:rate{window}",
                    "expr": error_ratio(slo, window),
                    "labels": labels,
                }
            )
        allowed = 1 - slo.objective
        out.append(
            {
                "record": "aiops:slo_error_budget:remaining",
                "expr": f'1 - (aiops:slo_error_ratio:rate{budget_window(slo)}{{slo="{slo.name}"}}'
                f" / {allowed:g})",
                "labels": labels,
            }
        )
        for alert in BURN_RATE_ALERTS:
            threshold = alert.factor * allowed
            long = f'aiops:slo_error_ratio:rate{alert.long}{{slo="{slo.name}"}}'
            short = f'aiops:slo_error_ratio:rate{alert.short}{{slo="{slo.name}"}}'
            out.append(
                {
                    "alert": "AiopsSloBurnRate",
                    "expr": f"{long} > {threshold:g} and {short} > {threshold:g}",
                    "labels": {
                        **labels,
                        "severity": alert.severity,
                        "burn_rate": f"{alert.factor:g}",
                        "long_window": alert.long,
                    },
                    "annotations": {
                        "summary": f"{slo.name} ({slo.service}) burns its error budget "
                        f"{alert.factor:g}x too fast over {alert.long} and {alert.short}."
                    },
                }
            )
    return out


# -- OpenSLO --------------------------------------------------------------------------------
API_VERSIONS = ("openslo/v1", "openslo.com/v1")
_RANGE = re.compile(r"\[\d+[smhdwy]\]")
_DURATION = re.compile(r"^(\d+)([dwM])$")


def load_openslo(path: Path) -> list[SloSettings]:
    """The SLO documents of an OpenSLO v1 file (several YAML documents; other kinds skipped).
    Errors name the file, the document and the key."""
    where = f"OpenSLO file {str(path)!r}"
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    slos = []
    for number, document in enumerate(documents, 1):
        if not isinstance(document, dict) or document.get("kind") != "SLO":
            continue
        name = str((document.get("metadata") or {}).get("name", f"#{number}"))
        try:
            slos.append(_from_openslo(document))
        except KeyError as exc:
            raise ConfigError(f"{where}: SLO {name!r}: missing key {exc.args[0]!r}") from None
        except (TypeError, IndexError, ValueError) as exc:
            raise ConfigError(f"{where}: SLO {name!r}: {exc}") from None
    return slos


def _from_openslo(document: dict[str, Any]) -> SloSettings:
    version = document.get("apiVersion")
    if version not in API_VERSIONS:
        raise ValueError(f"apiVersion must be one of {list(API_VERSIONS)}, got {version!r}")
    spec = document["spec"]
    indicator = spec.get("indicator") or {}
    sli = indicator.get("spec")
    if not sli:
        raise ValueError("spec.indicator.spec: an inline indicator is needed (indicatorRef is not)")
    objective = spec["objectives"][0]
    window = spec["timeWindow"][0]
    days, calendar = _window(window)
    fields: dict[str, Any] = {
        "name": document["metadata"]["name"],
        "service": spec["service"],
        "description": spec.get("description", ""),
        "objective": float(objective["target"]),
        "window_days": days,
        "calendar": calendar,
    }
    if "ratioMetric" in sli:
        ratio = sli["ratioMetric"]
        for key in ("good", "bad", "total"):
            if key in ratio:
                fields[key] = _query(ratio[key], f"ratioMetric.{key}")
    elif "thresholdMetric" in sli:
        fields["query"] = _query(sli["thresholdMetric"], "thresholdMetric")
        op = objective.get("op", "lt")
        if op not in _OPS:
            raise ValueError(f"objectives[0].op must be one of {list(_OPS)}, got {op!r}")
        fields["op"], fields["value"] = op, float(objective["value"])
    else:
        raise ValueError("spec.indicator.spec needs ratioMetric or thresholdMetric")
    try:
        return SloSettings(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"{key or 'indicator'}: {error['msg']}") from None


def _query(metric: dict[str, Any], key: str) -> str:
    source = metric["metricSource"]
    if str(source.get("type", "")).lower() != "prometheus":
        raise ValueError(f"{key}.metricSource.type must be Prometheus, got {source.get('type')!r}")
    query = str(source["spec"]["query"])
    if WINDOW in query or key == "thresholdMetric":
        return query
    if not _RANGE.search(query):
        raise ValueError(f"{key}: the query has no [range] to put the window in: {query!r}")
    return _RANGE.sub(f"[{WINDOW}]", query)


def _window(window: dict[str, Any]) -> tuple[int, bool]:
    """(days, calendar) of an OpenSLO timeWindow: rolling `duration` (e.g. 28d, 4w) or a
    calendar month (`isRolling: false`, duration 1M)."""
    duration = str(window["duration"])
    found = _DURATION.match(duration)
    if found is None:
        raise ValueError(f"timeWindow[0].duration must be like 28d, 4w or 1M, got {duration!r}")
    count, unit = int(found.group(1)), found.group(2)
    calendar = not window.get("isRolling", True)
    if unit == "M":
        if count != 1:
            raise ValueError(f"timeWindow[0].duration: one month at most, got {duration!r}")
        return 30, True
    return count * (7 if unit == "w" else 1), calendar


# -- evaluation -----------------------------------------------------------------------------
def live_ratio(slo: SloSettings, window: str) -> str:
    """`error_ratio` for an instant query without the recorded threshold series (a threshold
    SLI is sampled each minute over short windows, every 10 minutes over long ones)."""
    if slo.query is None:
        return error_ratio(slo, window)
    step = "1m" if window in ("5m", "30m", "1h", "2h", "6h") else "10m"
    return f"avg_over_time(({threshold_bad(slo)})[{window}:{step}])"


def evaluate(
    slo: SloSettings, instant: Callable[[str], float | None], now: datetime
) -> dict[str, Any]:
    """Burn rates over the alerting windows, the error budget left over the SLO's window
    (a calendar SLO: since the month began), and the burn-rate alerts that hold now."""
    allowed = 1 - slo.objective
    ratios = {w: instant(live_ratio(slo, w)) for w in RECORDED}
    if slo.calendar:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        window = f"{max(60, int((now - start).total_seconds()))}s"
    else:
        window = budget_window(slo)
    spent = instant(live_ratio(slo, window))
    firing = [
        {"severity": a.severity, "burn_rate": a.factor, "long": a.long, "short": a.short}
        for a in BURN_RATE_ALERTS
        if (ratios[a.long] or 0) > a.factor * allowed
        and (ratios[a.short] or 0) > a.factor * allowed
    ]
    remaining = None if spent is None else 1 - spent / allowed
    status = "no_data" if remaining is None else "ok"
    if remaining is not None and remaining <= 0:
        status = "exhausted"
    elif firing:
        status = "burning"
    return {
        "name": slo.name,
        "service": slo.service,
        "description": slo.description,
        "objective": slo.objective,
        "window": "calendar month" if slo.calendar else budget_window(slo),
        "error_ratio": spent,
        "budget_remaining": remaining,
        "burn_rates": {w: None if r is None else r / allowed for w, r in ratios.items()},
        "alerts": firing,
        "status": status,
    }
