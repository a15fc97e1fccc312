"""Helpers of the integration tests: an isolated copy of the template's resources on a real moto
server over HTTP, a users writer, one-batch consumption and the invariant check.

A module of its own, not conftest: several test folders have a conftest, and `from conftest
import` would find whichever was imported first."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from stream_records import sqs_event, stream_record, user_image

from orgsync.consumer.batch import BatchConsumer, BatchReport
from orgsync.consumer.dead_letter import DeadLetterForwarder
from orgsync.local.template.model import StackModel
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.scan import check_invariant, parallel_scan

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
_prefixes = itertools.count()


def next_prefix() -> str:
    """A NamePrefix no other test of this process uses."""
    return f"t{next(_prefixes)}-"


# The CLI under test sees only what a test passes: no endpoint, profile or region from the shell.
CLEAN_CLI_ENV = {
    "COLUMNS": "250",
    "NO_COLOR": "1",
    "AWS_ENDPOINT_URL": None,
    "AWS_PROFILE": None,
    "ORGSYNC_NAME_PREFIX": None,
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_REGION": None,
    "AWS_DEFAULT_REGION": None,
}


@dataclass
class AwsStack:
    """Clients for the endpoint and the names of one isolated copy of the template's resources."""

    endpoint_url: str
    model: StackModel
    dynamodb: Any
    sqs: Any
    streams: Any
    users_table: str
    organizations_table: str
    queue_url: str
    dead_letter_queue_url: str
    stream_arn: str
    requests: Counter[str]

    def count_requests(self) -> None:
        """Count every DynamoDB request made through `self.dynamodb` (botocore event hook)."""

        def count(model: Any, **_: Any) -> None:
            self.requests[model.name] += 1

        self.dynamodb.meta.events.register("before-call.dynamodb", count)


def client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class UsersWriter:
    """Writes users to the users table and returns the stream record each write would produce."""

    def __init__(self, aws: AwsStack) -> None:
        self.aws = aws
        self.seq = itertools.count(10**20, 7)

    def put(self, user_id: str, orgs: Any, *, status: str = "ACTIVE", **options: Any) -> dict:
        image = user_image(user_id, orgs, status=status, **options)
        self.aws.dynamodb.put_item(TableName=self.aws.users_table, Item=image)
        return stream_record(user_id, next(self.seq), new_image=image)

    def delete(self, user_id: str) -> dict:
        self.aws.dynamodb.delete_item(
            TableName=self.aws.users_table,
            Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}},
        )
        return stream_record(user_id, next(self.seq), event_name="REMOVE")


def consumer_for(aws: AwsStack, **store_options: Any) -> BatchConsumer:
    """The consumer exactly as the Lambda handler builds it, on this stack's tables."""
    store = DynamoReplicationStore(aws.dynamodb, aws.organizations_table, **store_options)
    return BatchConsumer(store, DeadLetterForwarder(aws.sqs, aws.dead_letter_queue_url))


def consume(aws: AwsStack, *records: dict, consumer: BatchConsumer | None = None) -> BatchReport:
    """Deliver the records as one Lambda SQS batch; every message must succeed."""
    response, report = (consumer or consumer_for(aws)).handle(sqs_event(*records), None)
    assert response == {"batchItemFailures": []}
    return report


def assert_invariant(aws: AwsStack) -> None:
    report = check_invariant(aws.dynamodb, aws.users_table, aws.organizations_table)
    assert report.holds, report.drift[:10]


def org_table(aws: AwsStack) -> list[dict]:
    items = parallel_scan(aws.dynamodb, aws.organizations_table)
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
