"""AWS list prices from docs/aws-facts.md, and the price of one million user changes.

Pure arithmetic over measured usage; no I/O. Usage that a local run cannot stand for (idle
polling, the local pipe's checkpoint table) is left out of the price and reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MILLION = 1_000_000


@dataclass(frozen=True)
class Prices:
    """USD, us-east-1 list prices as docs/aws-facts.md records them (some 3rd-party there)."""

    dynamodb_write_request_unit: float = 0.625 / MILLION  # on-demand WRU
    dynamodb_read_request_unit: float = 0.125 / MILLION  # on-demand RRU
    sqs_fifo_request: float = 0.50 / MILLION  # per 64 KB chunk
    lambda_request: float = 0.20 / MILLION
    lambda_gb_second_arm64: float = 0.0000133334
    pipes_request: float = 0.40 / MILLION  # after filtering, per 64 KB chunk
    # DynamoDB bills a transactional write of an item ≤ 1 KB as 2 WRU (docs/aws-facts.md).
    transactional_write_units: int = 2
    lambda_memory_gb: float = 0.5  # template.yaml: MemorySize 512, arm64


@dataclass(frozen=True)
class Usage:
    """What a number of user changes cost in billable units (all figures are totals)."""

    user_changes: int
    transactional_item_writes: int  # actions of TransactWriteItems on the organizations table
    standard_item_writes: int  # PutItem/DeleteItem/UpdateItem on the organizations table
    consistent_item_reads: int  # keys of consistent BatchGetItem/GetItem (items ≤ 4 KB)
    sqs_requests: int  # FIFO requests that moved messages (sends, non-empty receives, deletes)
    lambda_invocations: int
    lambda_seconds_per_invocation: float
    pipes_requests: int  # records delivered to the target after filtering


@dataclass(frozen=True)
class CostEstimate:
    """USD per million user changes, by service."""

    dynamodb: float
    sqs: float
    lambda_: float
    pipes: float

    @property
    def total(self) -> float:
        return self.dynamodb + self.sqs + self.lambda_ + self.pipes

    def as_dict(self) -> dict[str, Any]:
        return {
            "dynamodb": round(self.dynamodb, 4),
            "sqs": round(self.sqs, 4),
            "lambda": round(self.lambda_, 4),
            "pipes": round(self.pipes, 4),
            "total": round(self.total, 4),
        }


def estimate_cost(usage: Usage, prices: Prices | None = None) -> CostEstimate:
    """Scale the measured usage to one million user changes and price it."""
    prices = prices or Prices()
    if usage.user_changes <= 0:
        return CostEstimate(0.0, 0.0, 0.0, 0.0)
    scale = MILLION / usage.user_changes
    write_units = (
        usage.transactional_item_writes * prices.transactional_write_units
        + usage.standard_item_writes
    )
    dynamodb = (
        write_units * prices.dynamodb_write_request_unit
        + usage.consistent_item_reads * prices.dynamodb_read_request_unit
    )
    # Lambda bills duration in 1 ms steps; the local duration stands in for the AWS one.
    billed_seconds = max(0.001, round(usage.lambda_seconds_per_invocation, 3))
    lambda_ = usage.lambda_invocations * (
        prices.lambda_request
        + billed_seconds * prices.lambda_memory_gb * prices.lambda_gb_second_arm64
    )
    return CostEstimate(
        dynamodb=dynamodb * scale,
        sqs=usage.sqs_requests * prices.sqs_fifo_request * scale,
        lambda_=lambda_ * scale,
        pipes=usage.pipes_requests * prices.pipes_request * scale,
    )
