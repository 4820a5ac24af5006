"""Group commit for webhook intake: concurrent requests hand their deliveries to one writer
thread, which applies everything waiting as one batch in one transaction and then answers
each request. One commit (one fsync on SQLite) serves many notifications, and nobody gets a
2xx before the commit that holds their notification.

If the store is unavailable, every waiting request gets StoreUnavailableError (-> 503 with
Retry-After). If a batch fails for any other reason (another API replica on PostgreSQL won a
race on a unique key, or one delivery holds something the store refuses), its deliveries are
applied one by one, each in its own transaction: the good ones are stored (a lost race joins
the winner's rows), a delivery whose data the store refuses is `UnstorableError` (-> 422,
never retried), and any other failure of one delivery is answered 503 (a fault of ours that
a fix heals: the sender retries, nothing is dropped). One poison sender cannot fail anyone
else's delivery.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from sqlalchemy.exc import DataError, IntegrityError, StatementError

from controlplane.domain.errors import StoreUnavailableError, UnstorableError
from controlplane.incidents.intake import Delivery, IngestResult, ingest
from controlplane.storage import Database

log = logging.getLogger(__name__)
_RACE_RETRIES = 3
_Item = tuple[Delivery, "Future[IngestResult]"]


class IntakeWriter:
    def __init__(
        self, db: Database, *, group_by: str, flap_seconds: float = 0, max_batch: int = 256
    ) -> None:
        self.db = db
        self.group_by = group_by
        self.flap_seconds = flap_seconds
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
        except StoreUnavailableError as exc:  # the store itself: every sender retries
            for _, future in batch:
                future.set_exception(exc)
            return
        except Exception:  # a lost race, or one delivery the store refuses: each alone
            for item in batch:
                self._apply_alone(item)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _apply_alone(self, item: _Item) -> None:
        delivery, future = item
        for attempt in range(_RACE_RETRIES):
            try:
                future.set_result(self._ingest([delivery])[0])
                return
            except StoreUnavailableError as exc:
                future.set_exception(exc)
                return
            except IntegrityError:  # another replica won: replay, it joins the winner's rows
                if attempt == _RACE_RETRIES - 1:
                    future.set_exception(
                        StoreUnavailableError("intake: lost a write race three times", delay=1)
                    )
            except Exception as exc:
                future.set_exception(
                    _unstorable(delivery, exc) if _refused(exc) else _unexpected(delivery, exc)
                )
                return

    def _ingest(self, deliveries: list[Delivery]) -> list[IngestResult]:
        with self.db.write() as session:
            return ingest(
                session, deliveries, group_by=self.group_by, flap_seconds=self.flap_seconds
            )


def _refused(exc: Exception) -> bool:
    """The store (or its driver) refused this delivery's data: retrying the same bytes can
    never succeed. Anything else may be a fault of ours that a fix heals: that is retried."""
    if isinstance(exc, DataError | OverflowError | UnicodeError):
        return True
    if isinstance(exc, StatementError):  # the driver could not take a parameter's value
        return isinstance(exc.orig, TypeError | ValueError | OverflowError | UnicodeError)
    return False


def _unexpected(delivery: Delivery, exc: Exception) -> StoreUnavailableError:
    """A failure that is not the data's: answered 503, so the sender retries it (after a fix,
    say) and nothing acknowledged is ever dropped."""
    log.error("notification %s failed (answered 503)", delivery.digest[:12], exc_info=exc)
    return StoreUnavailableError(f"intake failed ({type(exc).__name__}); it is retried")


def _unstorable(delivery: Delivery, exc: Exception) -> UnstorableError:
    """This delivery alone fails with the store up: it never will succeed, so it is refused
    (4xx: Alertmanager does not retry it) and the details go to the log, not to the sender."""
    log.error(
        "notification %s cannot be stored (refused with 422)",
        delivery.digest[:12],
        exc_info=exc,
    )
    return UnstorableError(
        f"body: the notification cannot be stored ({type(exc).__name__}); "
        f"see the control plane's log for notification {delivery.digest[:12]}"
    )
