"""Fixtures of the convergence properties: one chaos stack holder per store and module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from convergence_harness import StackHolder
from dynamodb_local import require_dynamodb_local


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def stack_holder(request: pytest.FixtureRequest) -> Iterator[StackHolder]:
    store = str(request.param)
    if store == "dynamodb-local":
        require_dynamodb_local()
    holder = StackHolder(store)
    try:
        yield holder
    finally:
        holder.stop()
