"""Alembic revisions of the growthcurve store."""
