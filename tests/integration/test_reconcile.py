"""`orgsync reconcile` against a real moto server: backfill, every kind of corruption, repair while
the consumer keeps applying changes, and the CLI command.

The concurrent test relies on the conftest's moto server applying one request at a time
(`orgsync.local.servers.serialized.SerializedApplication`): moto's own TransactWriteItems is not
isolated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from integration_stack import CLEAN_CLI_ENV, AwsStack, UsersWriter, assert_invariant, consume
from stream_records import user_image
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.ops.reconcile import ReconcileReport, reconcile
from orgsync.schema.organizations import decode_membership, replication_item
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


def corrupt_a_little_of_everything(aws: AwsStack) -> None:
    users = UsersWriter(aws)
    consume(aws, *(users.put(f"s{i}", [f"org-{i % 5}", f"org-{i % 3}"]) for i in range(24)))
    for i in range(6):
        users.put(f"backfill-{i}", [f"org-{i}"])  # never replicated
    delete_membership(aws, "org-1", "s1")
    put_membership(aws, "zz", "s2", email="p@example.org", status="ACTIVE")
    put_membership(aws, "org-3", "s3", email="p@example.org", status="SUSPENDED")
    put_membership(aws, "org-0", "ghost")
    rewrite_replication(aws, "s4", orgs=frozenset({"phantom"}))


def invoke_cli(aws: AwsStack, *args: str) -> Any:
    prefix = aws.users_table.removesuffix("poc-users")
    return CliRunner().invoke(
        app,
        ["--endpoint-url", aws.endpoint_url, "--name-prefix", prefix, "reconcile", *args],
        env=CLEAN_CLI_ENV,
    )


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between runs of the same slices (times, how they ran)."""
    timing = {"seconds", "slice_seconds", "users_per_second", "slices_resumed", "slices_ran"}
    return {name: value for name, value in report.items() if name not in timing}


def test_slices_run_alone_then_merged_equal_a_full_run(aws, tmp_path):
    corrupt_a_little_of_everything(aws)
    full = invoke_cli(aws, "--json", "--total-segments", "3")
    assert full.exit_code == 0, full.output

    run_dir = tmp_path / "run"
    for segment in (2, 0, 1):  # anywhere, in any order (an audit; a repair runs users first)
        for pass_ in ("organizations", "users"):
            alone = invoke_cli(
                aws,
                "--json",
                "--total-segments",
                "3",
                "--segment",
                str(segment),
                "--pass",
                pass_,
                "--run-dir",
                str(run_dir),
            )
            assert alone.exit_code == 0, alone.output
            assert json.loads(alone.stdout)["slices"] == [f"{pass_}-{segment}-of-3"]
    merged = invoke_cli(aws, "--json", "--total-segments", "3", "--run-dir", str(run_dir))
    assert merged.exit_code == 0, merged.output
    merged_report = json.loads(merged.stdout)
    assert (merged_report["slices_resumed"], merged_report["slices_ran"]) == (6, 0)
    assert comparable(merged_report) == comparable(json.loads(full.stdout))
    assert merged_report["drift"] == {
        "extra": 1,
        "missing": 7,
        "orphan": 1,
        "record_mismatch": 1,
        "stale_attributes": 1,
        "unreplicated": 6,
    }

    # The directory belongs to that run: a repair (or other segments) must not reuse its slices.
    refused = invoke_cli(aws, "--repair", "--total-segments", "3", "--run-dir", str(run_dir))
    assert refused.exit_code == 2
    assert "holds a run of" in refused.output
    assert invoke_cli(aws, "--segment", "3", "--total-segments", "3").exit_code == 2


def test_the_table_output_names_the_drifted_users(aws):
    corrupt_a_little_of_everything(aws)
    result = invoke_cli(aws)
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if row.startswith("drifted users:"))
    for user_id in ("s1", "s2", "s3", "s4", "ghost", "backfill-0", "backfill-5"):
        assert user_id in line.removeprefix("drifted users:").replace(",", " ").split()


def test_a_killed_workers_run_resumes_without_redoing_finished_slices(aws, tmp_path):
    users = UsersWriter(aws)
    for i in range(240):  # a backfill: none of them replicated
        users.put(f"old-{i:03}", [f"org-{i % 7}", f"org-{i % 11}"])
    run_dir = tmp_path / "run"
    prefix = aws.users_table.removesuffix("poc-users")
    command = [
        sys.executable,
        "-m",
        "orgsync",
        "--endpoint-url",
        aws.endpoint_url,
        "--name-prefix",
        prefix,
        "reconcile",
        "--repair",
        "--json",
        "--total-segments",
        "8",
        "--workers",
        "2",
        "--run-dir",
        str(run_dir),
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORGSYNC_"))}
    first = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the workers too
    )
    try:
        deadline = time.monotonic() + 120
        while not list(run_dir.glob("users-*.json")):
            assert first.poll() is None, "the run ended before any slice could be seen finished"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished = {path.name: path.stat().st_mtime_ns for path in run_dir.glob("*-of-8.json")}
    assert 0 < len(finished) < 16, sorted(finished)

    second = subprocess.run(
        command, check=False, env=environment, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["slices_resumed"], report["slices_ran"]) == (
        len(finished),
        16 - len(finished),
    )
    assert len(report["slices"]) == 16
    untouched = {name: (run_dir / name).stat().st_mtime_ns for name in finished}
    assert untouched == finished, "a finished slice was run again"
    assert_invariant(aws)
    assert run_reconcile(aws).drift == {}


def test_an_unreadable_record_is_counted_and_skipped_and_the_rest_is_repaired(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("fine", ["a"]), users.put("garbled", ["a"]), users.put("gone", ["b"]))
    consume(aws, users.delete("gone"))
    delete_membership(aws, "a", "fine")
    for user_id in ("garbled", "gone"):  # a record orgsync did not write: seq is not a number
        aws.dynamodb.put_item(
            TableName=aws.organizations_table,
            Item={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "REPLICATION"}, "seq": {"S": "x"}},
        )

    report = run_reconcile(aws, repair=True)
    # "garbled" exists: the users pass reads its record; "gone" does not: the other pass does.
    assert report.drift == {"missing": 1, "unreadable_record": 2}
    assert (report.users_repaired, report.users_skipped, report.unresolved) == (1, 2, 2)
    assert sorted(s.user_id for s in report.skipped) == ["garbled", "gone"]
    assert {s.reason for s in report.skipped} == {"unreadable REPLICATION record (KeyError)"}
    assert json.loads(invoke_cli(aws, "--json").stdout)["unresolved"] == 2
    assert invoke_cli(aws, "--fail-on-drift").exit_code == 1


def test_a_damaged_slice_report_counts_as_unfinished_and_its_slice_runs_again(
    aws, tmp_path, caplog
):
    corrupt_a_little_of_everything(aws)
    run_dir = tmp_path / "run"
    first = invoke_cli(aws, "--json", "--total-segments", "2", "--run-dir", str(run_dir))
    assert first.exit_code == 0, first.output
    (run_dir / "users-1-of-2.json").write_text('{"repair": false, "users_sc')  # cut short

    again = invoke_cli(aws, "--json", "--total-segments", "2", "--run-dir", str(run_dir))
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["slices_resumed"], report["slices_ran"]) == (3, 1)
    assert comparable(report) == comparable(json.loads(first.stdout))
    assert "users-1-of-2.json cannot be read (JSONDecodeError): its slice runs again" in (
        caplog.text
    )

    (run_dir / "run.json").write_text("{")  # the run's own record damaged: refused, not guessed
    refused = invoke_cli(aws, "--total-segments", "2", "--run-dir", str(run_dir))
    assert refused.exit_code == 2
    assert "run.json cannot be read" in refused.output


def garble_record(aws: AwsStack, user_id: str) -> None:
    """A REPLICATION record orgsync did not write: `seq` is not a number."""
    aws.dynamodb.put_item(
        TableName=aws.organizations_table,
        Item={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "REPLICATION"}, "seq": {"S": "x"}},
    )


def test_a_user_with_an_unreadable_record_and_memberships_to_delete_is_skipped_not_fatal(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("garbled", ["a"]), users.put("fine", ["a"]), users.put("gone", ["b"]))
    consume(aws, users.delete("gone"))
    for user_id in ("garbled", "gone"):
        garble_record(aws, user_id)
    put_membership(aws, "zz", "garbled", email="x@example.org", status="ACTIVE")  # extra
    put_membership(aws, "zz", "fine", email="x@example.org", status="ACTIVE")  # extra
    put_membership(aws, "zz2", "gone")  # an orphan, in another partition than its record

    # Memberships are judged against the user items whatever the records hold, so the counts
    # do not depend on which page or segment the record and the memberships land in.
    expected = {"extra": 2, "orphan": 1, "unreadable_record": 2}
    for segments in (1, 8):
        audit = reconcile(
            aws.dynamodb,
            users_table=aws.users_table,
            organizations_table=aws.organizations_table,
            segments=segments,
        )
        assert audit.drift == expected, segments

    repaired = run_reconcile(aws, repair=True)  # used to end in a KeyError traceback
    assert repaired.drift == expected
    assert repaired.users_repaired == 1  # "fine"
    assert {s.user_id for s in repaired.skipped} == {"garbled", "gone"}
    assert all("unreadable REPLICATION record" in s.reason for s in repaired.skipped)
    found = parallel_scan(aws.dynamodb, aws.organizations_table, consistent=True)
    members = {(m.org_id, m.user_id) for item in found if (m := decode_membership(item))}
    assert ("zz", "fine") not in members
    assert {("zz", "garbled"), ("zz2", "gone")} <= members  # left for an operator to look at
