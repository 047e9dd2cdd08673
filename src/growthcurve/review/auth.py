"""Reviewers' login tokens: made once, shown once, stored as their SHA-256, with an expiry; and the CSRF token a
logged-in page sends with every POST (an HMAC of the login token, so it survives a server restart)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import sqlalchemy as sa

from growthcurve.errors import ConfigError
from growthcurve.review.queue import ReviewError, load_queue
from growthcurve.store.schema import review_reviewers


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_reviewer(engine: sa.Engine, name: str, hours: float | None = 24.0, queue: str | None = None) -> str:
    """A new login token for reviewer ``name`` (valid ``hours``, None: no expiry; for ``queue`` or every queue)."""
    if not name or len(name) > 128 or not name.strip():
        raise ConfigError("a reviewer name is 1-128 characters")
    if hours is not None and not hours > 0:
        raise ConfigError(f"--hours must be > 0 (got {hours})")
    if queue is not None:
        load_queue(engine, queue)
    token = secrets.token_urlsafe(24)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            review_reviewers.insert(),
            {
                "name": name.strip(),
                "token_sha256": _sha(token),
                "created": now,
                "expires": None if hours is None else now + dt.timedelta(hours=hours),
                "queue": queue,
            },
        )
    return token


def reviewer_of(engine: sa.Engine, token: str | None, queue: str) -> str:
    """The reviewer a token logs in, for ``queue``: 401 when missing, unknown or expired, 403 for another queue."""
    if not token:
        raise ReviewError("log in with your reviewer token", 401, "missing_token")
    r = review_reviewers.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(r.name, r.expires, r.queue).where(r.token_sha256 == _sha(token))).first()
    if row is None:
        raise ReviewError("unknown reviewer token: ask for a new one (growthcurve review token NAME)", 401, "bad_token")
    if row.expires is not None and row.expires < dt.datetime.now(dt.UTC).replace(tzinfo=None):
        raise ReviewError(f"the token of {row.name} expired at {row.expires:%Y-%m-%d %H:%M} UTC", 401, "expired_token")
    if row.queue is not None and row.queue != queue:
        raise ReviewError(f"this token is for queue '{row.queue}', not '{queue}'", 403, "wrong_queue")
    return str(row.name)


def csrf_for(token: str) -> str:
    """The CSRF token of a login token: what the page must echo in ``X-CSRF-Token`` on every POST."""
    return hmac.new(token.encode("utf-8"), b"growthcurve-review-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_for(token), sent)


__all__ = ["add_reviewer", "csrf_for", "csrf_ok", "reviewer_of"]
