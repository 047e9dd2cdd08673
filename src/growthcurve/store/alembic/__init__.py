"""Alembic migration scripts of the growthcurve store (run with ``growthcurve.store.init_db``)."""
