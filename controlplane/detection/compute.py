"""Where scoring runs: in this process (default) or on a Dask cluster (`dask.address`).

A unit of work is (detector, new values) -> (detector with its new state, scores). Detectors
are small numpy state, so they are shipped to Dask workers in batches of `dask.batch_size`
signals and come back updated; the scheduler keeps no state on the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from controlplane.config import DaskSettings
from detectors import BaseDetector
from detectors.fleet import EnsembleFleet

Work = list[tuple[BaseDetector, np.ndarray]]
Done = list[tuple[BaseDetector, np.ndarray]]


def score_batch(work: Work) -> Done:
    """Score each detector's new values, learning from them (streaming, causal)."""
    return [(detector, detector.update_many(values)) for detector, values in work]


class Scorer(Protocol):
    def score(self, work: Work) -> Done: ...


class LocalScorer:
    def score(self, work: Work) -> Done:
        return score_batch(work)


class DaskScorer:
    """Batches of signals as Dask tasks on an existing cluster."""

    def __init__(self, address: str | Any, batch_size: int) -> None:
        from distributed import Client

        self.client = Client(address, set_as_default=False)
        self.batch_size = batch_size

    def score(self, work: Work) -> Done:
        batches = [work[i : i + self.batch_size] for i in range(0, len(work), self.batch_size)]
        if not batches:
            return []
        futures = self.client.map(score_batch, batches, pure=False)
        return [item for batch in self.client.gather(futures) for item in batch]

    def close(self) -> None:
        self.client.close()


Maker = tuple[Callable[..., list[np.ndarray]], tuple[Any, ...]]


def _warm_part(maker: Maker, params: dict[str, Any]) -> EnsembleFleet:
    make, args = maker
    fleet = EnsembleFleet(**params)
    fleet.warm(make(*args))
    return fleet


def warm_fleet(
    client: Any,
    makers: list[Maker],
    *,
    on_warm: Callable[[], None] = lambda: None,
    **params: Any,
) -> EnsembleFleet:
    """Warm a fleet up on a Dask cluster: each (function, arguments) in `makers` yields the
    histories of one part, on a worker (so the histories never travel); once every part is
    warm there (`on_warm` is called), the parts come back and are joined in order."""
    from distributed import wait

    futures = client.map(_warm_part, makers, params=params, pure=False)
    with client.as_current():  # (`wait` looks for the current client)
        wait(futures)
    on_warm()
    return EnsembleFleet.concat(client.gather(futures))


def make_scorer(settings: DaskSettings) -> Scorer:
    if settings.address:
        return DaskScorer(settings.address, settings.batch_size)
    return LocalScorer()
