"""The stream record as a Pipe delivers it to SQS: one Lambda-shaped JSON object per record.

Converts boto3 `GetRecords` output into that wire shape; depends only on the standard library.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NotRequired, TypedDict

# Pipes (like Lambda) label stream records "1.1"; GetRecords on AWS says the same.
EVENT_VERSION = "1.1"
EVENT_SOURCE = "aws:dynamodb"


class PipeStreamPayload(TypedDict, total=False):
    ApproximateCreationDateTime: int | float
    Keys: dict[str, Any]
    NewImage: dict[str, Any]
    OldImage: dict[str, Any]
    SequenceNumber: str
    SizeBytes: int
    StreamViewType: str


class PipeUserIdentity(TypedDict):
    type: str
    principalId: str


class PipeRecord(TypedDict):
    eventID: str
    eventName: str
    eventVersion: str
    eventSource: str
    awsRegion: str
    dynamodb: PipeStreamPayload
    eventSourceARN: str
    userIdentity: NotRequired[PipeUserIdentity]


def to_pipe_record(raw: Mapping[str, Any], *, stream_arn: str, region: str) -> PipeRecord:
    """Shape one GetRecords record as the message body Pipes sends (eb-pipes-dynamodb.html)."""
    stream = raw.get("dynamodb", {})
    payload: PipeStreamPayload = {}
    created = stream.get("ApproximateCreationDateTime")
    if created is not None:
        payload["ApproximateCreationDateTime"] = _epoch_seconds(created)
    for image in ("Keys", "NewImage", "OldImage"):
        if image in stream:
            payload[image] = {k: _wire_value(v) for k, v in stream[image].items()}
    if "SequenceNumber" in stream:
        payload["SequenceNumber"] = str(stream["SequenceNumber"])
    if "SizeBytes" in stream:
        payload["SizeBytes"] = int(stream["SizeBytes"])
    if "StreamViewType" in stream:
        payload["StreamViewType"] = str(stream["StreamViewType"])
    record: PipeRecord = {
        "eventID": str(raw.get("eventID", "")),
        "eventName": str(raw.get("eventName", "")),
        "eventVersion": EVENT_VERSION,
        "eventSource": EVENT_SOURCE,
        "awsRegion": str(raw.get("awsRegion") or region),
        "dynamodb": payload,
        "eventSourceARN": stream_arn,
    }
    identity = raw.get("userIdentity")
    if identity:
        # GetRecords spells these PrincipalId/Type; Lambda-style events use camelCase.
        record["userIdentity"] = {
            "type": str(identity.get("Type", identity.get("type", ""))),
            "principalId": str(identity.get("PrincipalId", identity.get("principalId", ""))),
        }
    return record


def sequence_number(record: PipeRecord) -> str:
    return record["dynamodb"].get("SequenceNumber", "0")


def _epoch_seconds(value: Any) -> int | float:
    """Lambda sends epoch seconds as a number; keep sub-second precision when the source has it."""
    seconds = value.timestamp() if isinstance(value, datetime) else float(value)
    return int(seconds) if seconds.is_integer() else seconds


def _wire_value(value: Any) -> Any:
    """boto3 decodes B/BS to bytes; the wire format (and json.dumps) needs base64 text."""
    if isinstance(value, Mapping):
        if "B" in value:
            return {"B": _b64(value["B"])}
        if "BS" in value:
            return {"BS": [_b64(item) for item in value["BS"]]}
        if "M" in value:
            return {"M": {k: _wire_value(v) for k, v in value["M"].items()}}
        if "L" in value:
            return {"L": [_wire_value(item) for item in value["L"]]}
        return dict(value)
    return value


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)
