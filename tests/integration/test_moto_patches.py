"""The embedded moto store's transaction fix (an undo log instead of table copies) keeps moto's
all-or-nothing rollback intact: puts, in-place updates, deletes and stream records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from integration_stack import AwsStack
from moto.dynamodb.models.table import Item, Table
from moto.sqs.models import Message, Queue


def key(name: str) -> dict:
    return {"pk": {"S": name}, "sk": {"S": "x"}}


def test_a_cancelled_transaction_still_rolls_back_every_action(aws: AwsStack):
    table = aws.organizations_table
    aws.dynamodb.put_item(TableName=table, Item={**key("a"), "v": {"N": "1"}})
    actions = [{"Put": {"TableName": table, "Item": key(f"new-{i}")}} for i in range(20)]
    actions.append(
        {
            "Update": {
                "TableName": table,
                "Key": key("a"),
                "UpdateExpression": "SET v = :two",
                "ConditionExpression": "v = :zero",
                "ExpressionAttributeValues": {":two": {"N": "2"}, ":zero": {"N": "0"}},
            }
        }
    )
    with pytest.raises(ClientError) as cancelled:
        aws.dynamodb.transact_write_items(TransactItems=actions)
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons[-1] == "ConditionalCheckFailed"
    for i in range(20):
        assert "Item" not in aws.dynamodb.get_item(TableName=table, Key=key(f"new-{i}"))
    assert aws.dynamodb.get_item(TableName=table, Key=key("a"))["Item"]["v"] == {"N": "1"}


def test_transactions_leave_no_table_copies_behind(aws: AwsStack):
    table = aws.organizations_table
    for round_ in range(5):
        actions = [{"Put": {"TableName": table, "Item": key(f"{round_}-{i}")}} for i in range(30)]
        aws.dynamodb.transact_write_items(TransactItems=actions)
    assert len(Table.instances_tracked) == 0
    assert len(Item.instances_tracked) == 0


def test_a_cancelled_transaction_undoes_updates_deletes_and_their_stream_records(aws: AwsStack):
    table = aws.users_table  # the users table has a stream: a cancelled write must not show there
    for name in ("kept", "updated", "deleted"):
        aws.dynamodb.put_item(TableName=table, Item={**user_key(name), "v": {"N": "1"}})
    before = stream_records(aws)
    with pytest.raises(ClientError) as cancelled:
        aws.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**user_key("new"), "v": {"N": "1"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": user_key("updated"),
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Delete": {"TableName": table, "Key": user_key("deleted")}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": user_key("kept"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = {
        item["pk"]["S"]: item["v"]["N"]
        for item in aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    }
    assert items == {"USER#kept": "1", "USER#updated": "1", "USER#deleted": "1"}
    assert stream_records(aws) == before


def test_a_transaction_naming_one_item_twice_changes_nothing(aws: AwsStack):
    table = aws.organizations_table
    with pytest.raises(ClientError):
        aws.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": key("twice")}},
                {"Put": {"TableName": table, "Item": {**key("twice"), "v": {"N": "2"}}}},
            ]
        )
    assert "Item" not in aws.dynamodb.get_item(TableName=table, Key=key("twice"))


def test_a_table_named_by_its_arn_is_rolled_back_too(aws: AwsStack):
    table = aws.users_table
    arn = aws.dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    before = stream_records(aws)
    with pytest.raises(ClientError):
        aws.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": user_key("by-name")}},
                {"Put": {"TableName": arn, "Item": user_key("by-arn")}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": user_key("absent"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"] == []
    assert stream_records(aws) == before


def user_key(name: str) -> dict:
    return {"pk": {"S": f"USER#{name}"}, "sk": {"S": "METADATA"}}


def stream_records(aws: AwsStack) -> list[str]:
    shards = aws.streams.describe_stream(StreamArn=aws.stream_arn)["StreamDescription"]["Shards"]
    iterator = aws.streams.get_shard_iterator(
        StreamArn=aws.stream_arn,
        ShardId=shards[0]["ShardId"],
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    records = aws.streams.get_records(ShardIterator=iterator)["Records"]
    return [record["eventID"] for record in records]


RESET_SCRIPT = """
import json, urllib.request
import boto3
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Item, Table
from moto.sqs.models import Message, Queue
from orgsync.local.servers import MotoStore

store = MotoStore()
store.start()
urllib.request.urlopen(
    urllib.request.Request(store.endpoint_url + "/moto-api/reset", method="POST")
).read()
client = boto3.client(
    "dynamodb", endpoint_url=store.endpoint_url, region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing",
)
client.create_table(
    TableName="t", BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
)
for round_ in range(3):
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": "t", "Item": {"pk": {"S": f"{round_}-{i}"}}}} for i in range(10)
    ])
try:
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}}}},
        {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "absent"}},
                            "ConditionExpression": "attribute_exists(pk)"}},
    ])
except ClientError:
    pass
print(json.dumps({
    "tracked": len(Table.instances_tracked) + len(Item.instances_tracked),
    "undo_log": DynamoDBBackend.transact_write_items.__name__,
    "rolled_back": "Item" not in client.get_item(TableName="t", Key={"pk": {"S": "new"}}),
    "items": client.scan(TableName="t")["Count"],
}))
store.stop()
"""


def test_the_patches_survive_a_moto_api_reset(tmp_path):
    # In a process of its own: a reset wipes every moto backend of the process it reaches.
    script = tmp_path / "reset.py"
    script.write_text(RESET_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures == {
        "tracked": 0,
        "undo_log": "transact_with_undo_log",
        "rolled_back": True,
        "items": 30,
    }


def test_a_malformed_number_in_a_transaction_key_is_a_client_error_not_a_server_error(
    aws: AwsStack,
):
    # The undo log saves nothing for an action moto will reject; moto then answers as usual.
    with pytest.raises(ClientError) as refused:
        aws.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": aws.organizations_table, "Item": key("ok")}},
                {
                    "Delete": {
                        "TableName": aws.organizations_table,
                        "Key": {"pk": {"N": "abc"}, "sk": {"S": "x"}},
                    }
                },
            ]
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Item" not in aws.dynamodb.get_item(TableName=aws.organizations_table, Key=key("ok"))


KEEP_SCRIPT = """
import json, urllib.request
import boto3
from orgsync.local.servers import MotoStore

store = MotoStore()
store.start()
session = dict(
    endpoint_url=store.endpoint_url, region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing",
)
dynamodb, sqs = boto3.client("dynamodb", **session), boto3.client("sqs", **session)
streams = boto3.client("dynamodbstreams", **session)
for name in ("kept", "other"):
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    sqs.create_queue(QueueName=name)
dynamodb.put_item(TableName="kept", Item={"pk": {"S": "before"}})
arn = dynamodb.describe_table(TableName="kept")["Table"]["LatestStreamArn"]
shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
iterator = streams.get_shard_iterator(
    StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
)["ShardIterator"]
iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
store.keep_on_reset(account_id="123456789012", region="us-east-1", tables=["kept"], queues=["kept"])
urllib.request.urlopen(
    urllib.request.Request(store.endpoint_url + "/moto-api/reset", method="POST")
).read()
dynamodb.put_item(TableName="kept", Item={"pk": {"S": "after"}})
after = streams.get_records(ShardIterator=iterator)
after_next = streams.get_records(ShardIterator=after["NextShardIterator"])
figures = {
    "tables": sorted(dynamodb.list_tables()["TableNames"]),
    "queues": sorted(url.rsplit("/", 1)[-1] for url in sqs.list_queues().get("QueueUrls", [])),
    "items": sorted(item["pk"]["S"] for item in dynamodb.scan(TableName="kept")["Items"]),
    "read_on": [r["dynamodb"]["Keys"]["pk"]["S"] for r in after["Records"]],
    "next": len(after_next["Records"]),
}
store.stop()
# A stopped store's resources are spared no more: moto's own mocks start empty again.
from moto import mock_aws
with mock_aws():
    figures["after_stop"] = boto3.client("sqs", region_name="us-east-1").list_queues().get(
        "QueueUrls", []
    )
print(json.dumps(figures))
"""


def test_a_moto_api_reset_spares_what_the_stack_keeps_and_resets_the_rest(tmp_path):
    # In a process of its own, like the reset test above.
    script = tmp_path / "keep.py"
    script.write_text(KEEP_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {
        "tables": ["kept"],
        "queues": ["kept"],
        "items": ["after", "before"],
        # A reader mid-stream reads on with the iterator it held before the reset.
        "read_on": ["after"],
        "next": 0,
        "after_stop": [],
    }


def test_the_linear_item_build_refuses_exactly_the_items_moto_refuses(aws: AwsStack):
    # moto's own limit is 405,000 bytes of names and values (its LimitedSizeDict); the patched
    # Item.__init__ sums them once instead of once per attribute (moto_patches.items).
    table = aws.organizations_table
    base = key("big")
    overhead = sum(len(name) + len(value["S"]) for name, value in base.items()) + len("blob")
    fits = {**base, "blob": {"S": "x" * (405_000 - overhead)}}
    aws.dynamodb.put_item(TableName=table, Item=fits)
    too_big = {**base, "blob": {"S": "x" * (405_001 - overhead)}}
    with pytest.raises(ClientError) as refused:
        aws.dynamodb.put_item(TableName=table, Item=too_big)
    assert "Item size has exceeded the maximum allowed size" in str(refused.value)
    many = {**base, **{f"a{i}": {"S": "y" * 1000} for i in range(410)}}
    with pytest.raises(ClientError):
        aws.dynamodb.put_item(TableName=table, Item=many)


def test_queue_counts_read_once_per_call_give_moto_s_answers(aws: AwsStack):
    # moto_patches.queue_clock: one clock read per count, the same comparisons as moto's.
    queue = Queue("q-counts", "us-east-1", "123456789012", VisibilityTimeout="30")
    for index in range(6):
        message = Message(f"m{index}", f"body {index}")
        message.mark_sent(delay_seconds=30 if index == 0 else 0)
        queue._messages.append(message)
    queue._messages[1].change_visibility(30)
    assert [m.id for m in queue.messages] == ["m2", "m3", "m4", "m5"]
    assert queue.approximate_number_of_messages == 4
    assert queue.approximate_number_of_messages_delayed == 1
    assert queue.approximate_number_of_messages_not_visible == 1
    assert [m.id for m in queue.messages] == [
        m.id for m in queue._messages if m.visible and not m.delayed
    ]
