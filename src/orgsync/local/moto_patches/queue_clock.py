"""moto's SQS queue counts read the clock once per call, not once per message.

`Queue.messages` (what a receive may return) and the three ApproximateNumberOfMessages counts
walk every message of the queue and ask each whether it is visible or delayed, and each answer
reads the clock through `unix_time_millis` (a datetime built per call, ~20 µs). moto builds all
three counts whenever it builds a queue's attributes, which it does twice for every message
sent (to read ContentBasedDeduplication), so a backlog of n messages cost n² clock reads: 27 ms
of store CPU per change at a 400-message backlog (issue 10). Here each call reads the clock once
and compares every message with that instant, with moto's own comparisons (`visible`: now >
visible_at; `delayed`: now < delayed_until): the same answers, from one snapshot of time.
"""

from __future__ import annotations

from typing import Any

_MARK = "__orgsync_one_clock_read__"

REQUIRED = (
    "moto.sqs.models:Queue.messages",
    "moto.sqs.models:Queue.approximate_number_of_messages",
    "moto.sqs.models:Queue.approximate_number_of_messages_delayed",
    "moto.sqs.models:Queue.approximate_number_of_messages_not_visible",
    "moto.sqs.models:Message.visible",
    "moto.sqs.models:Message.delayed",
    "moto.core.utils:unix_time_millis",
)


def apply() -> None:
    """Replace the four Queue properties (a second call keeps the replacements)."""
    from moto.core import utils  # noqa: PLC0415 - moto only when it serves
    from moto.sqs import models  # noqa: PLC0415

    queue = models.Queue
    if getattr(vars(queue)["messages"].fget, _MARK, False):
        return
    clock = utils.unix_time_millis  # the function moto.sqs.models imports and calls

    def messages(self: Any) -> list[Any]:
        now = clock()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def approximate_number_of_messages(self: Any) -> int:
        return len(messages(self))

    def approximate_number_of_messages_delayed(self: Any) -> int:
        now = clock()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def approximate_number_of_messages_not_visible(self: Any) -> int:
        now = clock()
        return sum(1 for m in self._messages if not now > m.visible_at)

    for function in (
        messages,
        approximate_number_of_messages,
        approximate_number_of_messages_delayed,
        approximate_number_of_messages_not_visible,
    ):
        setattr(function, _MARK, True)
        setattr(queue, function.__name__, property(function))
