"""Builders of real-shaped stream records and SQS events for tests (shape: events/*.json)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

USERS_STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/poc-users/stream/2026-11-24T00:00:00.000"
)


def user_image(
    user_id: str,
    orgs: Iterable[str] | None = (),
    *,
    email: str | None = "person@example.org",
    status: str | None = "ACTIVE",
    orgs_as_set: bool = False,
) -> dict[str, Any]:
    image: dict[str, Any] = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}}
    if email is not None:
        image["email"] = {"S": email}
    if status is not None:
        image["status"] = {"S": status}
    if orgs is not None:
        orgs = list(orgs)
        if orgs_as_set:
            image["organizations"] = {"SS": orgs}
        else:
            image["organizations"] = {"L": [{"S": org} for org in orgs]}
    return image


def stream_record(
    user_id: str,
    seq: int,
    orgs: Iterable[str] | None = (),
    *,
    event_name: str = "MODIFY",
    new_image: dict[str, Any] | None = None,
    pk: str | None = None,
    sk: str = "METADATA",
    created_at: float = 1764000000.0,
    event_id: str | None = None,
    **image_options: Any,
) -> dict[str, Any]:
    """A record exactly as EventBridge Pipes puts it in an SQS message body."""
    keys = {"pk": {"S": pk if pk is not None else f"USER#{user_id}"}, "sk": {"S": sk}}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": created_at,
        "Keys": keys,
        "SequenceNumber": str(seq),
        "SizeBytes": 200,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name != "REMOVE":
        dynamodb["NewImage"] = (
            new_image if new_image is not None else user_image(user_id, orgs, **image_options)
        )
    return {
        "eventID": event_id or uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": USERS_STREAM_ARN,
    }


def body(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def sqs_message(
    message_body: str, *, group_id: str, message_id: str | None = None, receive_count: int = 1
) -> dict[str, Any]:
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle-" + uuid.uuid4().hex,
        "body": message_body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1764000000123",
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": group_id,
            "SenderId": "AROAEXAMPLE:pipe",
            "MessageDeduplicationId": uuid.uuid4().hex,
            "ApproximateFirstReceiveTimestamp": "1764000000150",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:user-dynamo-stream.fifo",
        "awsRegion": "us-east-1",
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A Lambda SQS event holding the given stream records, one message each."""
    return {
        "Records": [
            sqs_message(body(r), group_id=r["dynamodb"]["Keys"]["pk"]["S"]) for r in records
        ]
    }
