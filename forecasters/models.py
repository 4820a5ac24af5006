"""The forecasting models `auto` chooses among (every registered model but `auto` itself).

Adding a model = its module plus one line here; `forecasters.REGISTRY` adds `auto` to these.
"""

from __future__ import annotations

from forecasters.base import BaseForecaster, SeasonalNaive
from forecasters.ets import ExponentialSmoothingForecaster
from forecasters.holt_winters import HoltWinters
from forecasters.mstl import MstlForecaster
from forecasters.profile import SeasonalProfile
from forecasters.prophet_model import ProphetForecaster

MODELS: dict[str, type[BaseForecaster]] = {
    cls.name: cls
    for cls in (
        SeasonalNaive,
        SeasonalProfile,
        HoltWinters,
        ExponentialSmoothingForecaster,
        MstlForecaster,
        ProphetForecaster,
    )
}
