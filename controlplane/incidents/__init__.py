"""Incidents: turning alert notifications into deduplicated, grouped incidents, and their
lifecycle (acknowledge, resolve). Pure functions over a SQLAlchemy session: the caller owns the
transaction, so a notification and everything it changes commit together or not at all."""

from controlplane.incidents.intake import Delivery, IngestResult, ingest
from controlplane.incidents.lifecycle import (
    IncidentFilter,
    acknowledge,
    get_incident,
    list_incidents,
    resolve,
)

__all__ = [
    "Delivery",
    "IncidentFilter",
    "IngestResult",
    "acknowledge",
    "get_incident",
    "ingest",
    "list_incidents",
    "resolve",
]
