"""Hot path: decode + project + plan per stream record, against the Powertools baseline.

Run: `pytest benchmarks/ --benchmark-only` (one call = one record; figures in µs per record).
Both paths run in the same session on the same samples, so their ratio is meaningful.
"""

from __future__ import annotations

import itertools

import pytest

from orgsync.bench.hot_path import baseline_path, check_same_decisions, orgsync_path
from orgsync.bench.samples import hot_path_samples
from orgsync.domain.rule import decide
from orgsync.schema.stream import decode_body

SAMPLES = 500


@pytest.fixture(scope="module")
def samples():
    samples = hot_path_samples(SAMPLES)
    check_same_decisions(samples)
    return samples


@pytest.mark.benchmark(group="hot path: decode + project + plan, one record")
def test_orgsync_decodes_projects_and_plans_one_record(benchmark, samples):
    cycle = itertools.cycle(samples)
    result = benchmark(lambda: orgsync_path(next(cycle)))
    assert result is not None


@pytest.mark.benchmark(group="hot path: decode + project + plan, one record")
def test_baseline_powertools_record_and_boto3_deserializer_one_record(benchmark, samples):
    cycle = itertools.cycle(samples)
    result = benchmark(lambda: baseline_path(next(cycle)))
    assert result is not None


@pytest.mark.benchmark(group="hot path breakdown")
def test_orgsync_decode_only(benchmark, samples):
    cycle = itertools.cycle([sample.body for sample in samples])
    benchmark(lambda: decode_body(next(cycle)))


@pytest.mark.benchmark(group="hot path breakdown")
def test_orgsync_plan_only(benchmark, samples):
    decoded = [(decode_body(sample.body), sample.current) for sample in samples]
    cycle = itertools.cycle(decoded)

    def plan_one():
        change, current = next(cycle)
        return decide(change, current)

    benchmark(plan_one)
