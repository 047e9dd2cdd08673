"""The micro-batcher alone: grouping, the size cap, results back to their callers, a failing batch."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from growthcurve.serving.batching import MicroBatcher


class _Model:
    """Doubles numbers and records each batch; ``fail_on`` makes a batch containing it raise."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay, self.fail_on = delay, fail_on
        self.threads: set[str] = set()

    def __call__(self, xs: list[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(xs))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in xs:
            raise ValueError("boom")
        return [2 * x for x in xs]


def _run(model: _Model, max_batch: int, max_wait_ms: float, calls: list[list[int]]) -> list[object]:
    async def go() -> list[object]:
        with ThreadPoolExecutor(1, thread_name_prefix="infer") as ex:
            b = MicroBatcher(model, ex, max_batch, max_wait_ms)
            b.start()
            out = await asyncio.gather(*(b.submit(c) for c in calls), return_exceptions=True)
            assert b.running
            await b.stop()
            return list(out)

    return asyncio.run(go())


def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    m = _Model()
    out = _run(m, max_batch=64, max_wait_ms=50, calls=[[i] for i in range(20)])
    assert out == [[2 * i] for i in range(20)]
    assert len(m.batches) < 20 and sorted(x for b in m.batches for x in b) == list(range(20))
    assert m.threads == {n for n in m.threads if n.startswith("infer")}  # never on the event loop's thread


def test_batches_never_exceed_max_batch() -> None:
    m = _Model(delay=0.01)
    out = _run(m, max_batch=4, max_wait_ms=20, calls=[list(range(i * 3, i * 3 + 3)) for i in range(10)])
    assert out == [[2 * x for x in range(i * 3, i * 3 + 3)] for i in range(10)]
    assert max(len(b) for b in m.batches) <= 4 and sum(len(b) for b in m.batches) == 30


def test_a_failing_batch_fails_its_callers_only() -> None:
    m = _Model(fail_on=3)

    async def go() -> tuple[object, list[int]]:
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(m, ex, max_batch=8, max_wait_ms=0)
            b.start()
            bad = await asyncio.gather(b.submit([3]), return_exceptions=True)
            good = await b.submit([1, 2])  # the loop goes on
            await b.stop()
            return bad[0], good

    bad, good = asyncio.run(go())
    assert isinstance(bad, ValueError) and good == [2, 4]


def test_submit_before_start_is_refused() -> None:
    async def go() -> None:
        with ThreadPoolExecutor(1) as ex:
            await MicroBatcher(_Model(), ex).submit([1])

    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(go())
