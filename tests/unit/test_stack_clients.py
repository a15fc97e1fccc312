"""The stack's clients: one per service, built once even when threads ask at the same moment.

Building a client sends nothing, so no server is needed (and the unit tests forbid sockets).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from orgsync.local.clients import StackClients

_ENDPOINT = "http://127.0.0.1:4566"


def test_each_service_has_one_client_even_when_threads_ask_at_once() -> None:
    clients = StackClients(_ENDPOINT, region="eu-west-1", concurrency=10, external=False)
    services = ["dynamodb", "sqs", "dynamodbstreams", "sts"] * 8
    start = threading.Barrier(len(services))

    def ask(service: str) -> object:
        start.wait()
        return clients.client(service)

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        built = list(pool.map(ask, services))
    by_service: dict[str, set[int]] = {}
    for service, client in zip(services, built, strict=True):
        by_service.setdefault(service, set()).add(id(client))
    assert all(len(ids) == 1 for ids in by_service.values()), by_service
    assert clients.client("sqs") is built[services.index("sqs")]


def test_clients_go_to_the_endpoint_in_the_region_given() -> None:
    clients = StackClients(_ENDPOINT, region="eu-west-1", concurrency=10, external=False)
    sqs = clients.client("sqs")
    assert sqs.meta.endpoint_url == _ENDPOINT
    assert sqs.meta.region_name == "eu-west-1"
    # Room for the pipe's and the poller's threads at once (concurrency + 10).
    assert sqs.meta.config.max_pool_connections == 20
