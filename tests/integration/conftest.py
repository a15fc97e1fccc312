"""Fixtures of the integration tests: a real moto server over HTTP, and per test a fresh copy of
the template's tables and queues (helpers in tests/support/integration_stack.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from integration_stack import TEMPLATE, AwsStack, client, next_prefix

from orgsync.local.servers import MotoStore
from orgsync.local.template.reader import load_stack_model
from orgsync.local.template.resources import create_resources


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    store = MotoStore(port=0)
    store.start()
    yield store.endpoint_url
    store.stop()


@pytest.fixture
def aws(moto_endpoint: str) -> AwsStack:
    """A fresh copy of the template's tables and queues under a unique NamePrefix."""
    prefix = next_prefix()
    model = load_stack_model(
        TEMPLATE, parameters={"NamePrefix": prefix}, endpoint_url=moto_endpoint
    )
    dynamodb, sqs = client("dynamodb", moto_endpoint), client("sqs", moto_endpoint)
    created = create_resources(model, dynamodb=dynamodb, sqs=sqs)
    return AwsStack(
        endpoint_url=moto_endpoint,
        model=model,
        dynamodb=dynamodb,
        sqs=sqs,
        streams=client("dynamodbstreams", moto_endpoint),
        users_table=model.table("UsersTable").name,
        organizations_table=model.table("OrganizationsTable").name,
        queue_url=created.queue_urls["UserStreamQueue"],
        dead_letter_queue_url=created.queue_urls["UserStreamDeadLetterQueue"],
        stream_arn=created.stream_arns["UsersTable"],
        requests=Counter(),
    )
