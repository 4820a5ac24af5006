"""Group commit for webhook intake: concurrent requests hand their deliveries to one writer
thread, which applies everything waiting as one batch in one transaction and then answers
each request. One commit (one fsync on SQLite) serves many notifications, and nobody gets a
2xx before the commit that holds their notification.

If a batch fails on a unique key (another API replica on PostgreSQL won a race), its
deliveries are retried one by one, each in its own transaction, and then join the winner's
rows. If the store is unavailable, every waiting request gets StoreUnavailableError (-> 503).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from sqlalchemy.exc import IntegrityError

from controlplane.domain.errors import StoreUnavailableError
from controlplane.incidents.intake import Delivery, IngestResult, ingest
from controlplane.storage import Database

log = logging.getLogger(__name__)
_RACE_RETRIES = 3
_Item = tuple[Delivery, "Future[IngestResult]"]


class IntakeWriter:
    def __init__(self, db: Database, *, group_by: str, max_batch: int = 256) -> None:
        self.db = db
        self.group_by = group_by
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._thread.start()
            self._started = True

    def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started = False

    def submit(self, delivery: Delivery) -> Future[IngestResult]:
        if not self._started:
            raise StoreUnavailableError("intake writer is not running", delay=1)
        future: Future[IngestResult] = Future()
        self._queue.put((delivery, future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = [first], False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._apply(batch)
            if stopping:
                return

    def _apply(self, batch: Sequence[_Item]) -> None:
        try:
            results = self._ingest([d for d, _ in batch])
        except IntegrityError:
            for item in batch:  # a lost race: replay alone, each joins the winner's rows
                self._apply_alone(item)
            return
        except Exception as exc:
            for _, future in batch:
                future.set_exception(_unavailable(exc))
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _apply_alone(self, item: _Item) -> None:
        delivery, future = item
        for attempt in range(_RACE_RETRIES):
            try:
                future.set_result(self._ingest([delivery])[0])
                return
            except IntegrityError as exc:
                if attempt == _RACE_RETRIES - 1:
                    future.set_exception(_unavailable(exc))
            except Exception as exc:
                future.set_exception(_unavailable(exc))
                return

    def _ingest(self, deliveries: list[Delivery]) -> list[IngestResult]:
        with self.db.write() as session:
            return ingest(session, deliveries, group_by=self.group_by)


def _unavailable(exc: Exception) -> Exception:
    if isinstance(exc, StoreUnavailableError):
        return exc
    # Anything unexpected is still answered with 503: Alertmanager retries, nothing is lost.
    log.exception("intake batch failed", exc_info=exc)
    return StoreUnavailableError(f"intake failed: {type(exc).__name__}: {exc}")
