"""Which endpoints `dlq redrive --method auto` and `status` treat as an emulator on this machine."""

from __future__ import annotations

import pytest

from orgsync.ops.endpoints import is_local_endpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4566",
        "http://127.0.0.1:4566/",
        "http://127.8.9.10:1234",
        "http://localhost:4566",
        "http://LOCALHOST",
        "http://sqs.localhost:4566",
        "http://[::1]:4566",
    ],
)
def test_loopback_endpoints_are_local(url: str) -> None:
    assert is_local_endpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "https://sqs.us-east-1.amazonaws.com",
        "http://10.0.0.5:4566",
        "http://localstack:4566",
        "http://notlocalhost.example.org",
    ],
)
def test_aws_and_remote_endpoints_are_not_local(url: str | None) -> None:
    assert not is_local_endpoint(url)
