"""`orgsync status` against a real moto server: all three queues with their oldest message, what
needs an operator with the command to run, and missing resources shown rather than raised."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from integration_stack import CLEAN_CLI_ENV, AwsStack, client
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.ops import status


def _prefix(aws: AwsStack) -> str:
    return aws.users_table.removesuffix("poc-users")


def _invoke(aws: AwsStack, *args: str, prefix: str | None = None, columns: int = 250) -> Any:
    return CliRunner().invoke(
        app,
        ["--endpoint-url", aws.endpoint_url, "--name-prefix", prefix or _prefix(aws), *args],
        env={**CLEAN_CLI_ENV, "COLUMNS": str(columns)},
    )


def _pipe_dlq_url(aws: AwsStack) -> str:
    name = f"{_prefix(aws)}user-table-dynamo-pipe-dlq"
    return aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]


def _read(aws: AwsStack, **options: Any) -> status.PipelineStatus:
    prefix = _prefix(aws)
    return status.read_status(
        aws.sqs,
        aws.dynamodb,
        main_queue=f"{prefix}user-dynamo-stream.fifo",
        dead_letter_queue=f"{prefix}user-dynamo-stream-deadletter.fifo",
        pipe_dead_letter_queue=f"{prefix}user-table-dynamo-pipe-dlq",
        tables=(aws.users_table, aws.organizations_table),
        checkpoint_table="orgsync-local-pipe-checkpoints",
        **options,
    )


def _fill_both_dlqs(aws: AwsStack) -> None:
    aws.sqs.send_message(
        QueueUrl=aws.dead_letter_queue_url,
        MessageBody="{not json",
        MessageGroupId="USER#a",
        MessageDeduplicationId=uuid.uuid4().hex,
    )
    aws.sqs.send_message(QueueUrl=_pipe_dlq_url(aws), MessageBody='{"batch": "shard range"}')


def test_status_shows_the_pipes_dlq_and_flags_non_empty_dlqs_with_the_command_to_run(
    aws: AwsStack,
) -> None:
    _fill_both_dlqs(aws)

    result = _invoke(aws, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    pipe_dlq = data["pipe_dead_letter_queue"]
    assert pipe_dlq["name"] == f"{_prefix(aws)}user-table-dynamo-pipe-dlq"
    assert (pipe_dlq["exists"], pipe_dlq["visible"], pipe_dlq["age_source"]) == (
        True,
        1,
        "sampled",
    )
    assert data["dead_letter_queue"]["visible"] == 1
    assert data["dead_letter_queue"]["oldest_age_seconds"] >= 0
    # Never received from: locally there is no CloudWatch metric to read instead.
    assert data["main_queue"]["oldest_age_seconds"] is None
    hints = " ".join(hint for item in data["attention"] for hint in item["hints"])
    for command in (
        "orgsync dlq list",
        "orgsync dlq discard --stale",
        "orgsync dlq redrive",
        "orgsync reconcile --repair",
    ):
        assert command in hints

    rendered = _invoke(aws, "status", columns=80)
    assert rendered.exit_code == 0, rendered.output
    assert "user-table-dynamo-pipe-dlq" in rendered.stdout
    assert "needs an operator (2)" in rendered.stdout
    assert "orgsync dlq discard --stale" in rendered.stdout


def test_status_samples_a_dlqs_oldest_message_and_leaves_it_visible(aws: AwsStack) -> None:
    _fill_both_dlqs(aws)
    an_hour_later = datetime.now(tz=UTC) + timedelta(hours=1)

    for _ in range(2):  # the sample hides nothing: the second read sees the same
        snapshot = _read(aws, clock=lambda: an_hour_later)
        for queue in (snapshot.dead_letter_queue, snapshot.pipe_dead_letter_queue):
            assert queue is not None
            assert queue.age_source is status.AgeSource.SAMPLED
            assert queue.oldest_age_seconds is not None
            assert 3600 <= queue.oldest_age_seconds < 3600 + 600
            assert (queue.visible, queue.in_flight) == (1, 0)


def test_a_stuck_main_queue_is_flagged_from_cloudwatchs_oldest_message_age(
    aws: AwsStack,
) -> None:
    cloudwatch = client("cloudwatch", aws.endpoint_url)
    now = datetime.now(tz=UTC)
    main = f"{_prefix(aws)}user-dynamo-stream.fifo"
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": main}],
                "Timestamp": now - timedelta(minutes=1),
                "Value": 900,
            }
        ],
    )

    snapshot = _read(aws, cloudwatch=cloudwatch, clock=lambda: now)
    assert snapshot.main_queue.oldest_age_seconds == 900
    assert snapshot.main_queue.age_source is status.AgeSource.CLOUDWATCH
    (stuck,) = snapshot.attention
    assert stuck.subject == main
    assert "900 s" in stuck.problem
    assert any("orgsync dlq list" in hint for hint in stuck.hints)


def test_a_healthy_pipeline_needs_no_operator(aws: AwsStack) -> None:
    snapshot = _read(aws, cloudwatch=client("cloudwatch", aws.endpoint_url))
    assert snapshot.attention == ()
    assert snapshot.main_queue.oldest_age_seconds is None  # no datapoint: unknown

    rendered = _invoke(aws, "status")
    assert rendered.exit_code == 0, rendered.output
    assert "nothing needs an operator" in rendered.stdout


def test_a_missing_queue_is_shown_as_missing_instead_of_failing_status(aws: AwsStack) -> None:
    aws.sqs.delete_queue(QueueUrl=_pipe_dlq_url(aws))

    result = _invoke(aws, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pipe_dead_letter_queue"]["exists"] is False
    assert data["main_queue"]["exists"] is True
    (missing,) = data["attention"]
    assert missing["subject"].endswith("user-table-dynamo-pipe-dlq")
    assert any("--name-prefix" in hint for hint in missing["hints"])

    rendered = _invoke(aws, "status")
    assert rendered.exit_code == 0, rendered.output
    assert "missing" in rendered.stdout


def test_status_under_a_prefix_with_nothing_deployed_shows_everything_missing(
    aws: AwsStack,
) -> None:
    result = _invoke(aws, "status", "--user", "auth0|a", prefix="nothing-here-")
    assert result.exit_code == 0, result.output
    assert "needs an operator (5)" in result.stdout
    assert result.stdout.count("missing") >= 5
