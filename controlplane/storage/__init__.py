"""Persistence: SQLAlchemy 2 models, the engine/session factory and Alembic migrations.

Only this package and the services in `controlplane.incidents` / `controlplane.auth` touch
the database; the API calls those services and the console calls the API.
"""

from controlplane.storage.db import Database, masked, upgrade

__all__ = ["Database", "masked", "upgrade"]
