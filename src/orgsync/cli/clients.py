"""The CLI's composition root: builds boto3 clients from `CliSettings`, once per command.

Only the CLI edge calls this; ops modules receive the clients it returns and never build their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from orgsync.cli.settings import DEFAULT_LOCAL_REGION, CliSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from orgsync.ops.reconcile.on_aws import StepFunctions

# Long enough for a 20 s SQS long poll; standard retry mode backs off on throttling and 5xx.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
    # As many connections as reconcile runs slices at once (ops.reconcile.running.MAX_THREADS).
    max_pool_connections=16,
)

# Emulators accept any key pair but botocore refuses to sign without one.
_DUMMY_KEY = "orgsync-local"


@dataclass(frozen=True)
class AwsClients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    # Their session, for a command's further clients: a session loads each service model, the
    # endpoint rules and the partitions once; a new session would load them again.
    session: boto3.Session


def build_session(settings: CliSettings) -> boto3.Session:
    """A session honouring profile and region; fills the gaps only when talking to an emulator."""
    session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
    if settings.endpoint_url is None:
        return session
    region = session.region_name or DEFAULT_LOCAL_REGION
    if session.get_credentials() is None:
        return boto3.Session(
            aws_access_key_id=_DUMMY_KEY,
            aws_secret_access_key=_DUMMY_KEY,
            region_name=region,
        )
    return boto3.Session(profile_name=settings.profile, region_name=region)


def build_clients(settings: CliSettings) -> AwsClients:
    session = build_session(settings)
    return AwsClients(
        dynamodb=session.client(
            "dynamodb", endpoint_url=settings.endpoint_url, config=CLIENT_CONFIG
        ),
        sqs=session.client("sqs", endpoint_url=settings.endpoint_url, config=CLIENT_CONFIG),
        session=session,
    )


def effective_region(settings: CliSettings) -> str | None:
    """The region the command's clients sign for (None: none configured anywhere)."""
    try:
        return build_session(settings).region_name
    except BotoCoreError:  # e.g. the profile does not exist: no region to name
        return settings.region


def known_region(region: str) -> bool:
    """Whether any AWS partition botocore knows has this region (a newer region botocore does
    not know yet reads as unknown, so callers use this for hints, never to refuse)."""
    return region in _known_regions()


@cache
def _known_regions() -> frozenset[str]:
    session = boto3.Session(region_name=DEFAULT_LOCAL_REGION)
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for service in ("dynamodb", "sqs")
        for region in session.get_available_regions(service, partition_name=partition)
    )


def dynamodb_client(settings: CliSettings) -> DynamoDBClient:
    """A DynamoDB client for `settings`: module-level, so `partial(dynamodb_client, settings)`
    pickles into the worker processes of `orgsync reconcile --workers`."""
    return build_clients(settings).dynamodb


def stepfunctions_client(settings: CliSettings) -> StepFunctions:
    """The Step Functions client of `orgsync reconcile --on-aws`, built by that command alone.

    Without --endpoint-url, botocore's per-service AWS_ENDPOINT_URL_SFN still applies: the way
    to point these calls alone at an emulator that runs state machines (the tests do).
    """
    # boto3's client is untyped here (no Step Functions stubs in the dev set): the protocol
    # names the calls that are made.
    client: StepFunctions = build_session(settings).client(
        "stepfunctions", endpoint_url=settings.endpoint_url, config=CLIENT_CONFIG
    )
    return client
