"""`orgsync reconcile` against a real moto server: backfill, every kind of corruption, repair while
the consumer keeps applying changes, and the CLI command.

The concurrent test relies on the conftest's moto server applying one request at a time
(`orgsync.local.servers.serialized.SerializedApplication`): moto's own TransactWriteItems is not
isolated.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

from integration_stack import CLEAN_CLI_ENV, AwsStack, UsersWriter, assert_invariant, consume
from stream_records import user_image
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.ops.reconcile import ReconcileReport, reconcile
from orgsync.schema.organizations import replication_item
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.scan import check_invariant, organizations_snapshot, parallel_scan


def run_reconcile(aws: AwsStack, *, repair: bool = False) -> ReconcileReport:
    return reconcile(
        aws.dynamodb,
        users_table=aws.users_table,
        organizations_table=aws.organizations_table,
        repair=repair,
    )


def put_membership(aws: AwsStack, org_id: str, user_id: str, **attributes: str) -> None:
    item = {
        "pk": {"S": f"ORGANIZATION#{org_id}"},
        "sk": {"S": f"MEMBERSHIP#{user_id}"},
        "org_id": {"S": org_id},
        "user_id": {"S": user_id},
        "source_seq": {"N": "1"},
    }
    item.update({name: {"S": value} for name, value in attributes.items()})
    aws.dynamodb.put_item(TableName=aws.organizations_table, Item=item)


def delete_membership(aws: AwsStack, org_id: str, user_id: str) -> None:
    aws.dynamodb.delete_item(
        TableName=aws.organizations_table,
        Key={"pk": {"S": f"ORGANIZATION#{org_id}"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}},
    )


def replication_of(aws: AwsStack, user_id: str):
    items = parallel_scan(aws.dynamodb, aws.organizations_table, consistent=True)
    return organizations_snapshot(items).replication.get(user_id)


def rewrite_replication(aws: AwsStack, user_id: str, **changes: Any) -> None:
    current = replication_of(aws, user_id)
    assert current is not None
    fields = {
        name: getattr(current, name)
        for name in ("seq", "revision", "orgs", "fingerprint", "deleted", "pending_seq", "dirty")
    }
    fields.update(changes)
    state = type(current)(**fields)
    aws.dynamodb.put_item(TableName=aws.organizations_table, Item=replication_item(user_id, state))


def delete_replication(aws: AwsStack, user_id: str) -> None:
    aws.dynamodb.delete_item(
        TableName=aws.organizations_table,
        Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "REPLICATION"}},
    )


def test_users_written_before_the_stream_existed_are_backfilled_by_repair(aws):
    users = UsersWriter(aws)
    for i in range(30):
        users.put(f"old-{i}", [f"org-{i % 4}", f"org-{i % 7}"], orgs_as_set=i % 2 == 0)
    users.put("no-orgs", [])
    aws.dynamodb.put_item(
        TableName=aws.users_table,
        Item={**user_image("broken", []), "organizations": {"N": "3"}},
    )

    found = run_reconcile(aws)
    assert (found.users_scanned, found.invalid_users, found.users_with_drift) == (32, 1, 31)
    assert found.drift["unreplicated"] == 31
    assert found.drift["missing"] == sum(len({i % 4, i % 7}) for i in range(30))
    assert found.invalid_sample == ("broken",)
    assert found.users_repaired == 0
    assert not check_invariant(aws.dynamodb, aws.users_table, aws.organizations_table).holds

    repaired = run_reconcile(aws, repair=True)
    assert (repaired.users_repaired, repaired.unresolved, repaired.skipped) == (31, 0, ())
    assert_invariant(aws)
    assert run_reconcile(aws).users_with_drift == 0

    # The stream takes over from the backfill: the next change of a user applies normally.
    report = consume(aws, users.put("old-3", ["org-new"]))
    assert report.counters["UserChangesApplied"] == 1
    assert_invariant(aws)


def test_every_kind_of_corruption_is_counted_and_repair_restores_the_invariant(aws):
    users = UsersWriter(aws)
    last = {f"u{i}": users.put(f"u{i}", ["a", "b", "c"]) for i in range(8)}
    last["big"] = users.put("big", [f"o{i:03}" for i in range(130)])
    consume(aws, *last.values())
    assert_invariant(aws)

    delete_membership(aws, "a", "u0")  # missing
    delete_membership(aws, "b", "u0")  # missing
    put_membership(aws, "zz", "u1", email="p@example.org", status="ACTIVE")  # extra
    put_membership(aws, "c", "u2", email="p@example.org", status="SUSPENDED")  # stale
    put_membership(aws, "a", "ghost", email="g@example.org")  # orphan
    put_membership(aws, "b", "ghost")  # orphan
    delete_replication(aws, "u3")  # unreplicated
    rewrite_replication(aws, "u4", orgs=frozenset({"a", "phantom"}))  # record mismatch
    rewrite_replication(aws, "u5", fingerprint="0000000000000000")  # record mismatch
    rewrite_replication(  # a chunked commit that died after its claim
        aws, "big", pending_seq=10**21, dirty=frozenset({"o000", "gone"})
    )
    put_membership(aws, "gone", "big", email="p@example.org", status="ACTIVE")  # extra
    aws.dynamodb.put_item(  # an invalid user item: counted, never judged
        TableName=aws.users_table, Item={**user_image("u6", []), "status": {"N": "1"}}
    )

    found = run_reconcile(aws)
    assert found.drift == {
        "missing": 2,
        "extra": 2,
        "stale_attributes": 1,
        "orphan": 2,
        "unreplicated": 1,
        "record_mismatch": 2,
        "interrupted_commit": 1,
    }
    assert found.invalid_users == 1
    assert set(found.drifted_sample) == {"u0", "u1", "u2", "ghost", "u3", "u4", "u5", "big"}

    # A user is judged once per pass and scan segment it drifted in: "ghost"'s two orphans are
    # in two organizations' partitions, so two segments of the organizations pass judge it, and
    # "big" drifts in both passes (its claim; its membership in "gone").
    assert found.users_with_drift == 10

    repaired = run_reconcile(aws, repair=True)
    assert (repaired.users_repaired, repaired.unresolved) == (9, 0)
    # The users pass finished "big"'s interrupted commit (deleting "gone") before the
    # organizations pass scanned: that extra was repaired once, not judged twice.
    assert repaired.drift["extra"] == 1
    assert_invariant(aws)
    assert run_reconcile(aws).drift == {}
    # The 130-membership repair went through the chunked claim protocol and finished it.
    big = replication_of(aws, "big")
    assert big is not None
    assert (big.pending_seq, big.dirty) == (None, frozenset())

    # Repairs keep seq: replaying a user's last record is still stale, a new one still applies.
    assert consume(aws, last["u4"]).counters["StaleEventsSkipped"] == 1
    assert consume(aws, users.put("u4", ["d"])).counters["UserChangesApplied"] == 1
    assert_invariant(aws)


def test_repair_restores_the_invariant_while_the_consumer_keeps_applying_changes(aws):
    users = UsersWriter(aws)
    rng = random.Random(4)
    org_ids = [f"org-{i}" for i in range(12)]
    ids = [f"user-{i}" for i in range(40)]
    last = {user_id: users.put(user_id, rng.sample(org_ids, 3)) for user_id in ids}
    consume(aws, *last.values())
    for index, user_id in enumerate(ids):  # corrupt every user, one way or another
        match index % 5:
            case 0:
                delete_replication(aws, user_id)
                put_membership(aws, "stray", user_id, email="x@example.org")
            case 1:
                rewrite_replication(aws, user_id, orgs=frozenset({"org-0"}))
            case 2:
                put_membership(aws, org_ids[index % 12], user_id, status="EDITED")
            case 3:
                put_membership(aws, "stray", user_id)
            case 4:
                for org_id in org_ids:
                    delete_membership(aws, org_id, user_id)
    for index in range(5):
        put_membership(aws, "org-1", f"ghost-{index}")
    # 40 users and 5 ghosts; the 8 users of case 0 drift in both passes (no record; a stray).
    assert run_reconcile(aws).users_with_drift == 53

    repairs_done = threading.Event()
    writer_errors: list[BaseException] = []
    lock = threading.Lock()
    rounds = 0

    def keep_writing() -> None:
        nonlocal rounds
        writer = random.Random(9)
        try:
            while not repairs_done.is_set() or rounds < 15:
                batch = []
                for user_id in writer.sample([*ids, *(f"new-{i}" for i in range(10))], 4):
                    if writer.random() < 0.15:
                        record = users.delete(user_id)
                    else:
                        orgs = writer.sample(org_ids, writer.randint(0, 4))
                        status = writer.choice(["ACTIVE", "SUSPENDED"])
                        record = users.put(user_id, orgs, status=status)
                    batch.append(record)
                    with lock:
                        last[user_id] = record
                consume(aws, *batch)
                rounds += 1
        except BaseException as exc:  # surfaced by the main thread's assertion
            writer_errors.append(exc)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    reports = []
    overlapping: list[int] = []
    try:
        for _ in range(3):
            before = rounds
            reports.append(run_reconcile(aws, repair=True))
            overlapping.append(rounds - before)
    finally:
        repairs_done.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert writer_errors == []
    assert rounds >= 15
    assert sum(overlapping) > 0, "the consumer must commit while repairs run"
    assert reports[0].users_repaired + reports[0].users_already_converged > 0
    assert all(not report.skipped for report in reports), [r.skipped for r in reports]

    # The pipeline drains: every user's last record is delivered once more (at least once).
    consume(aws, *last.values())
    assert_invariant(aws)
    assert run_reconcile(aws).users_with_drift == 0


class FakeRacingStore(DynamoReplicationStore):
    """The real store, except that the consumer applies `change` just before the first commit:
    the deterministic version of the race the previous test leaves to the scheduler."""

    def __init__(self, aws: AwsStack, change: dict) -> None:
        super().__init__(aws.dynamodb, aws.organizations_table)
        self.aws = aws
        self.change: dict | None = change

    def commit(self, plans):
        if self.change is not None:
            consume(self.aws, self.change)
            self.change = None
        return super().commit(plans)


def test_a_repair_fenced_out_by_the_consumer_re_reads_and_re_plans(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("racer", ["a", "b"]))
    put_membership(aws, "zz", "racer", email="p@example.org", status="ACTIVE")
    store = FakeRacingStore(aws, users.put("racer", ["b", "c"], status="SUSPENDED"))
    report = reconcile(
        aws.dynamodb,
        users_table=aws.users_table,
        organizations_table=aws.organizations_table,
        repair=True,
        store=store,
    )
    # The users pass's repair is fenced out once, re-read and re-planned; the membership in "zz"
    # is the organizations pass's, which repairs it in a judgement of its own.
    assert (report.conflicts_retried, report.users_repaired, report.skipped) == (1, 2, ())
    assert_invariant(aws)


def test_a_user_whose_record_keeps_changing_is_skipped_and_reported(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("racer", ["a"]))
    delete_membership(aws, "a", "racer")
    store = FakeRacingStore(aws, users.put("racer", ["a", "b"]))
    report = reconcile(
        aws.dynamodb,
        users_table=aws.users_table,
        organizations_table=aws.organizations_table,
        repair=True,
        store=store,
        max_attempts=1,
    )
    assert (report.users_repaired, report.unresolved) == (0, 1)
    assert [s.user_id for s in report.skipped] == ["racer"]
    assert "kept changing" in report.skipped[0].reason


def test_the_cli_reports_drift_as_json_repairs_and_fails_on_drift_only_when_asked(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("cli-1", ["a", "b"]), users.put("cli-2", ["a"]))
    users.put("cli-3", ["c"])  # never replicated
    delete_membership(aws, "a", "cli-1")
    prefix = aws.users_table.removesuffix("poc-users")
    assert aws.organizations_table == f"{prefix}poc-organizations"

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(
            app,
            ["--endpoint-url", aws.endpoint_url, "--name-prefix", prefix, "reconcile", *args],
            env=CLEAN_CLI_ENV,
        )

    result = invoke("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["drift"] == {"missing": 2, "unreplicated": 1}
    assert (report["users_scanned"], report["users_with_drift"]) == (3, 2)

    assert invoke("--json", "--fail-on-drift").exit_code == 1

    result = invoke("--repair", "--segments", "2")
    assert result.exit_code == 0, result.output
    assert "repaired 2 user(s)" in result.stdout
    assert "missing" in result.stdout
    assert_invariant(aws)

    result = invoke("--fail-on-drift")
    assert result.exit_code == 0, result.output
    assert "no drift" in result.stdout
