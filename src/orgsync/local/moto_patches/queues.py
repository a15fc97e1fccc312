"""Reads of moto's SQS state that its API does not offer cheaply: a queue's default long-poll wait.

Under the one-request-at-a-time rule, a ReceiveMessage that names no wait must know the queue's
ReceiveMessageWaitTimeSeconds before it reaches moto (`SerializedApplication`).
"""

from __future__ import annotations

import urllib.parse

REQUIRED = ("moto.sqs.models:sqs_backends", "moto.sqs.models:SQSBackend")


def queue_wait_seconds(queue_url: str, region: str | None) -> int:
    """The ReceiveMessageWaitTimeSeconds of a moto queue (`…/account/name`); 0 if there is none."""
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 - moto only when it serves

    account_id, _, name = urllib.parse.urlparse(queue_url).path.strip("/").rpartition("/")
    if account_id not in sqs_backends:
        return 0
    regions = sqs_backends[account_id]
    if region is not None and region in regions:
        backends = [regions[region]]
    else:  # a request without a signature: any region's queue of that name
        backends = list(regions.values())
    for backend in backends:
        queue = backend.queues.get(name)
        if queue is not None:
            return int(getattr(queue, "receive_message_wait_time_seconds", 0) or 0)
    return 0
