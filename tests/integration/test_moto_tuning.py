"""The embedded moto store's transaction fix keeps moto's all-or-nothing rollback intact."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import AwsStack
from moto.dynamodb.models.table import Item, Table


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
