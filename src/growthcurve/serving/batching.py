"""Micro-batching: requests that arrive together run through the model as one batch, off the event loop.

Why not a library: the maintained options either bring their own server (Ray Serve, BentoML, Triton) or
are unmaintained; with FastAPI already in place the loop below is the whole mechanism. One asyncio task
per model waits for the first queued item, then gathers more until ``max_batch`` items or ``max_wait_ms``
have passed, and hands the batch to a worker thread. While the model is busy, new requests queue up, so
under load batches fill by themselves and at low load a lone request waits at most ``max_wait_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Group single items for ``predict_batch`` (list in, one result per item out) run in ``executor``."""

    def __init__(
        self,
        predict_batch: Callable[[list[Any]], list[Any]],
        executor: Executor,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predict_batch = predict_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the gathering task on the running loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="growthcurve-microbatcher")

    async def stop(self) -> None:
        """Cancel the task; items still queued get a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("the server is shutting down"))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, items: list[Any]) -> list[Any]:
        """Queue ``items`` (they may land in different batches) and return their results in order."""
        if self._queue is None or not self.running:
            raise RuntimeError("the micro-batcher is not running")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, fut in zip(items, futures, strict=True):
            self._queue.put_nowait((item, fut))
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_ms / 1000.0
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            live = [(x, f) for x, f in batch if not f.cancelled()]  # a client that hung up is not computed
            if not live:
                continue
            try:
                outputs = await loop.run_in_executor(self.executor, self.predict_batch, [x for x, _ in live])
                if len(outputs) != len(live):
                    raise RuntimeError(f"predict_batch returned {len(outputs)} results for {len(live)} inputs")
            except Exception as exc:  # the model failed: every caller of this batch gets the error, loop goes on
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(live))
            for (_, fut), out in zip(live, outputs, strict=True):
                if not fut.done():
                    fut.set_result(out)
