"""A run's artifacts published on a thread of their own, beside its work.

An artifact is an API round trip the run does not need the answer of: a deploy publishes about
a dozen (its delta, its summary, its CR, its progress as the CR moves on, its trace), and each
waited on a server that shares the machine's cores. In `publishing_alongside()` they are sent in
order by one thread while the run goes on with its tasks, in the run's own context (its flow run,
its task run, its API client), and all of them are in the API when the block ends, or before the
run pauses for a person (`wait_until_shown`). Outside the block an artifact is published at once.
An artifact that could not be published is logged, not raised: it shows a record, it is not one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from prefect import get_run_logger

__all__ = ["publish", "publishing_alongside", "wait_until_shown"]


class _Publisher:
    """One thread that publishes what it is given, in order."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="changeflow-ui")
        self._pending: list[Future[object]] = []

    def submit(self, show: Callable[[], object]) -> None:
        # the caller's context: the artifact belongs to its flow run and task run
        self._pending.append(self._thread.submit(contextvars.copy_context().run, show))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for sent in pending:
            try:
                sent.result()
            except Exception as exc:
                get_run_logger().warning("an artifact of this run was not published: %s", exc)

    def close(self) -> None:
        self.wait()
        self._thread.shutdown()


_publisher: contextvars.ContextVar[_Publisher | None] = contextvars.ContextVar(
    "changeflow_ui_publisher", default=None
)


@contextmanager
def publishing_alongside() -> Iterator[None]:
    """Publish the block's artifacts on a thread of their own; all of them by its end."""
    publisher = _Publisher()
    token = _publisher.set(publisher)
    try:
        yield
    finally:
        _publisher.reset(token)
        publisher.close()


def publish(show: Callable[..., object], /, **arguments: Any) -> None:
    """Call `show(**arguments)` (an artifact's API call) alongside the run, or now outside
    the block."""
    publisher = _publisher.get()
    if publisher is None:
        show(**arguments)
    else:
        publisher.submit(partial(show, **arguments))


def wait_until_shown() -> None:
    """Wait until every artifact published so far is in the API (before a pause, say)."""
    publisher = _publisher.get()
    if publisher is not None:
        publisher.wait()
