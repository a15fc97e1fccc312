"""DynamoDB Local stopping under a running endpoint: an AWS error for clients, no traceback."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from dynamodb_local import require_dynamodb_local

from orgsync.local.servers import DynamoDBLocalStore, locate_dynamodb_local


def test_a_stopped_dynamodb_local_is_an_aws_error_not_a_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    distribution = locate_dynamodb_local(require_dynamodb_local())
    assert distribution is not None
    store = DynamoDBLocalStore(distribution, port=0)
    store.start()
    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=store.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        client.list_tables()
        process = store._process  # the JVM: killed, as if it crashed
        assert process is not None
        process.kill()
        process.wait(timeout=10)
        with pytest.raises(ClientError) as raised:
            client.list_tables()
        assert raised.value.response["Error"]["Code"] == "InternalServerError"
        assert "DynamoDB Local behind this endpoint is not answering" in str(raised.value)
    finally:
        store.stop()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
