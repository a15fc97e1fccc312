"""A real moto server over HTTP for integration tests; resources are made from template.yaml."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from orgsync.local.resources import create_resources
from orgsync.local.store import MotoStore
from orgsync.local.template import StackModel, load_stack_model

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
_prefixes = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    store = MotoStore(port=0)
    store.start()
    yield store.endpoint_url
    store.stop()


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


@pytest.fixture
def aws(moto_endpoint: str) -> AwsStack:
    """A fresh copy of the template's tables and queues under a unique NamePrefix."""
    prefix = f"t{next(_prefixes)}-"
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
