"""The template's SQS event sources as pollers: one per enabled source, around the function's
handler, imported once per stack start with the function's environment (a cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgsync.local.lambda_.runtime import (
    Handler,
    apply_environment,
    import_handler,
    lambda_environment,
    restore_environment,
)
from orgsync.local.lambda_.sqs_poller import (
    BatchFaults,
    EventSourceConfig,
    InterruptReceive,
    SqsEventSourcePoller,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from orgsync.local.template.model import StackModel
    from orgsync.local.template.resources import CreatedResources


def event_source_pollers(
    model: StackModel,
    created: CreatedResources,
    *,
    sqs: SQSClient,
    endpoint_url: str,
    region: str,
    handler: Handler | None = None,
    emit_metrics: bool = False,
    maximum_concurrency: int | None = None,
    receive_wait_seconds: int = 0,
    faults: BatchFaults | None = None,
    interrupt_receive: InterruptReceive | None = None,
) -> list[SqsEventSourcePoller]:
    """Pollers (not started) for every enabled SQS event source of every function."""
    pollers: list[SqsEventSourcePoller] = []
    for function in model.functions:
        sources = [source for source in function.sqs_event_sources if source.enabled]
        if not sources:
            continue
        environment = lambda_environment(
            function, endpoint_url=endpoint_url, region=region, emit_metrics=emit_metrics
        )
        # Each stack start is a cold start: the handler module runs anew (see import_handler),
        # with the function's environment already set, as Lambda does: Powertools reads
        # POWERTOOLS_LOG_LEVEL and friends at import. The poller sets it again while it runs.
        previous = apply_environment(environment)
        try:
            invoked = handler or import_handler(function.handler, fresh=True)
        finally:
            restore_environment(previous)
        for source in sources:
            queue = model.queue_named(source.queue_name)
            config = EventSourceConfig.for_function(
                function,
                source,
                region=region,
                queue_url=created.queue_urls[queue.logical_id],
                queue_arn=created.queue_arns[queue.logical_id],
                maximum_concurrency=maximum_concurrency,
                receive_wait_seconds=receive_wait_seconds,
            )
            pollers.append(
                SqsEventSourcePoller(
                    config,
                    sqs=sqs,
                    handler=invoked,
                    environment=environment,
                    faults=faults,
                    interrupt_receive=interrupt_receive,
                )
            )
    return pollers
