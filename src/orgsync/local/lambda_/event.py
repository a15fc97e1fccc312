"""The event Lambda's SQS poller passes to a function: its wire shapes and how it is built.

Pure: builds from ReceiveMessage output; no boto3 calls.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef


class SqsMessageAttribute(TypedDict, total=False):
    stringValue: str
    binaryValue: str
    stringListValues: list[str]
    binaryListValues: list[str]
    dataType: str


class _SqsEventRecordRequired(TypedDict):
    messageId: str
    receiptHandle: str
    body: str
    attributes: dict[str, str]
    messageAttributes: dict[str, SqsMessageAttribute]
    md5OfBody: str
    eventSource: str
    eventSourceARN: str
    awsRegion: str


class SqsEventRecord(_SqsEventRecordRequired, total=False):
    """One record of the event Lambda sends for SQS (Records[] item)."""

    md5OfMessageAttributes: str


class SqsEvent(TypedDict):
    Records: list[SqsEventRecord]


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> SqsMessageAttribute:
    # Lambda spells SQS's attribute values in camelCase, binaries base64-encoded, and always
    # carries both list fields.
    attribute: SqsMessageAttribute = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [
            base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
        ],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def build_sqs_event(messages: Sequence[MessageTypeDef], *, queue_arn: str, region: str) -> SqsEvent:
    """The event Lambda's SQS poller passes to the function for these received messages."""
    records: list[SqsEventRecord] = []
    for message in messages:
        record: SqsEventRecord = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {str(k): str(v) for k, v in message.get("Attributes", {}).items()},
            "messageAttributes": {
                name: _lambda_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}
