"""POST an alert to a webhook with a timeout and retries; a failure is reported, never raised.

httpx's own transport retries only connection failures, not timeouts or 5xx answers, so the retry loop
(exponential backoff) is written here.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def post_alert(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    retries: int = 3,
    backoff_s: float = 0.5,
    sleep: Any = time.sleep,
) -> tuple[bool, str]:
    """Send ``payload`` as JSON; returns (delivered, status text such as ``'200'`` or ``'failed: timeout x4'``).

    A 2xx answer is delivered; a retryable status or a transport error is tried ``retries`` more times; any
    other 4xx is final (the receiver refuses the payload, resending will not help).
    """
    last = ""
    for attempt in range(retries + 1):
        try:
            r = client.post(url, json=payload)
        except httpx.TimeoutException:
            last = "timeout"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= r.status_code < 300:
                return True, str(r.status_code)
            last = f"HTTP {r.status_code}"
            if r.status_code not in RETRY_STATUS:
                return False, f"failed: {last} (not retried)"
        if attempt < retries:
            sleep(backoff_s * 2**attempt)
    return False, f"failed: {last} after {retries + 1} attempts"
