"""Capacity forecasters and capacity maths.

Forecasters follow one contract (`base.BaseForecaster`: validated `fit(series)` and
`predict(horizon, levels)` returning a `Forecast` with mean and 80/95% bands) and are found by
name in `REGISTRY`; `auto` (the default) picks per series by backtest. `capacity` turns a
forecast and a limit into crossing dates, a crossing probability and a replica count. Sees
only `controlplane.domain`. Adding a model = one module plus one line in `models.MODELS`; the
contract test (tests/unit/test_forecaster_contract.py) then checks it.
"""

from __future__ import annotations

from typing import Any

from controlplane.domain.registry import instantiate
from forecasters.auto import AutoForecaster
from forecasters.base import BaseForecaster, Forecast
from forecasters.models import MODELS

REGISTRY: dict[str, type[BaseForecaster]] = {AutoForecaster.name: AutoForecaster, **MODELS}
DEFAULT = AutoForecaster.name


def make(name: str = DEFAULT, **params: Any) -> BaseForecaster:
    """A fresh, unfitted forecaster; unknown names and parameters are errors that name them."""
    return instantiate(REGISTRY, "model", name, params)


__all__ = ["DEFAULT", "REGISTRY", "BaseForecaster", "Forecast", "make"]
