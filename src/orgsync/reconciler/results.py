"""Reading what a Distributed Map wrote with its ResultWriter: the manifest, then its files.

The formats, as the AWS Step Functions Developer Guide gives them ("ResultWriter (Map)",
section "Exporting to Amazon S3", checked against public code that parses them):

* the Map state's output is `{"MapRunArn": ..., "ResultWriterDetails": {"Bucket": b,
  "Key": "<Prefix>/<map run id>/manifest.json"}}`: the merge event carries the details;
* manifest.json is `{"DestinationBucket": b, "MapRunArn": ..., "ResultFiles": {"FAILED":
  [{"Key": k, "Size": n}, ...], "PENDING": [...], "SUCCEEDED": [...]}}`, one list per status,
  each naming result files (SUCCEEDED_0.json, ...) by key;
* a result file, with the default WriterConfig (Transformation NONE, OutputType JSON), is a
  JSON array of child executions: `{"ExecutionArn", "Name", "Input", "Output", "Status",
  "StartDate", "StopDate", "StateMachineArn", ...}` where `Input` and `Output` are JSON
  *strings* (the slice event; the slice's report) and failed ones carry `Error` and `Cause`
  instead of an output. OutputType JSONL (one execution per line) is read as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orgsync.ops.reconcile import ReconcileReport, Slice
from orgsync.reconciler.events import BadEventError, ResultLocation

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
PENDING = "PENDING"


class ResultsBucket:
    """The stack's results bucket, through an S3 client (boto3's; no S3 stubs in the dev set,
    hence `Any`: the two calls it makes are exercised against moto's S3 in the tests)."""

    def __init__(self, s3: Any, name: str) -> None:
        self._s3 = s3
        self.name = name

    def read_text(self, bucket: str, key: str) -> str:
        if bucket != self.name:
            # IAM would refuse it too; say so plainly instead of an AccessDenied.
            raise BadEventError(f"results must be in bucket {self.name}, not {bucket}")
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        text: str = body.read().decode("utf-8")
        return text

    def write_json(self, key: str, value: Mapping[str, Any]) -> None:
        body = json.dumps(value, indent=1).encode("utf-8")
        self._s3.put_object(Bucket=self.name, Key=key, Body=body, ContentType="application/json")


@dataclass(slots=True)
class MapResults:
    """The reports of the succeeded children; the names of those that did not report."""

    reports: list[ReconcileReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def read_map_results(bucket: ResultsBucket, location: ResultLocation) -> MapResults:
    manifest = _json_object(bucket.read_text(location.bucket, location.key), location.key)
    files = manifest.get("ResultFiles")
    if not isinstance(files, Mapping):
        raise BadEventError(f"{location.key} is not a ResultWriter manifest (no ResultFiles)")
    results = MapResults()
    for status, names in ((FAILED, results.failed), (PENDING, results.pending)):
        for execution in _executions(bucket, location.bucket, files.get(status)):
            names.append(_slice_name(execution))
    for execution in _executions(bucket, location.bucket, files.get(SUCCEEDED)):
        results.reports.append(_report(execution))
    return results


def _executions(bucket: ResultsBucket, name: str, files: object) -> Iterator[Mapping[str, Any]]:
    for entry in files if isinstance(files, list) else ():
        key = entry.get("Key") if isinstance(entry, Mapping) else None
        if not isinstance(key, str):
            raise BadEventError(f"a manifest entry has no Key: {entry!r}")
        text = bucket.read_text(name, key)
        try:
            rows = json.loads(text) if text.lstrip().startswith("[") else _json_lines(text)
        except ValueError as exc:
            raise BadEventError(f"{key}: not a ResultWriter results file ({exc})") from exc
        for row in rows:
            if not isinstance(row, Mapping):
                raise BadEventError(f"{key}: a child execution must be an object: {row!r}")
            yield row


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _report(execution: Mapping[str, Any]) -> ReconcileReport:
    output = execution.get("Output")
    try:
        return ReconcileReport.from_json(_json_object(output, execution.get("Name")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEventError(
            f"child execution {execution.get('Name')!r} did not output a slice report: {exc!r}"
        ) from exc


def _slice_name(execution: Mapping[str, Any]) -> str:
    """The slice a child was given (its Input is the slice event); else its execution name."""
    try:
        return Slice.from_json(_json_object(execution.get("Input"), None)).name
    except (KeyError, TypeError, ValueError, BadEventError):
        return str(execution.get("Name") or execution.get("ExecutionArn") or "?")


def _json_object(text: object, what: object) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise BadEventError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BadEventError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
