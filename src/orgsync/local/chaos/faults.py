"""The running fault injectors of one stack: what AWS does to messages, on purpose, from a seed.

The local pipe (late duplicates), the poller (crashes, delays) and the chaos proxy in front of
the store (throttling, conflicts, a chunked commit dying midway) consult one `Chaos`. Production
code (consumer, store, domain) knows nothing of this package. No boto3 here.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from orgsync.local.chaos.spec import ChaosSpec, ChaosSpecError, FaultKind
from orgsync.local.servers.proxy import ProxyAnswer
from orgsync.schema.keys import REPLICATION_SORT_KEY
from orgsync.schema.organizations import PENDING_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

_DYNAMODB_PREFIX: Final = "DynamoDB_20120810."
_ERROR_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"
# Operations a table's throughput applies to: these are the ones AWS throttles.
_DATA_PLANE: Final = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)
# SQS limits a MessageDeduplicationId to 128 characters.
_MAX_DEDUP_ID: Final = 128
# How much longer than the visibility timeout a delayed batch is held.
_DELAY_MARGIN_SECONDS: Final = 0.5


class _Dice:
    """One seeded generator per injector, so one fault kind's draws never shift another's."""

    def __init__(self, seed: int, name: str) -> None:
        # A str seed is hashed with SHA-512: stable across runs and processes.
        self._random = random.Random(f"{seed}:{name}")
        self._lock = threading.Lock()

    def roll(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            return self._random.random() < rate

    def below(self, limit: int) -> int:
        with self._lock:
            return self._random.randrange(limit)


class Chaos:
    """The running injectors of one stack: current spec, dice per fault kind, counters by kind.

    `reconfigure` swaps the spec and reseeds every die, so a test can run each history under its
    own drawn spec without restarting the stack.
    """

    def __init__(self, spec: ChaosSpec, *, visibility_timeout: float) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[FaultKind] = Counter()
        self._visibility_timeout = visibility_timeout
        self._spec = spec
        self._dice = self._make_dice(spec)
        self._held: list[tuple[int, SendMessageBatchRequestEntryTypeDef]] = []
        self._claims: set[str] = set()
        self._duplicate_serial = 0
        self._check_delay(spec)

    @staticmethod
    def _make_dice(spec: ChaosSpec) -> dict[FaultKind, _Dice]:
        return {kind: _Dice(spec.seed, kind.value) for kind in FaultKind}

    def _check_delay(self, spec: ChaosSpec) -> None:
        if spec.delay and self._visibility_timeout > 30:
            raise ChaosSpecError(
                f"delay holds a batch past the visibility timeout ({self._visibility_timeout:g}s "
                "here): set a short one (--visibility-timeout, local only)"
            )

    # -- spec and counters

    @property
    def spec(self) -> ChaosSpec:
        return self._spec

    def use_visibility_timeout(self, seconds: float) -> None:
        """The consumed queue's visibility timeout: a delayed batch is held just past it."""
        self._visibility_timeout = seconds
        self._check_delay(self._spec)

    def reconfigure(self, spec: ChaosSpec) -> None:
        """Run under `spec` from now on: new rates, dice reseeded; counters keep counting."""
        self._check_delay(spec)
        with self._lock:
            self._spec = spec
            self._dice = self._make_dice(spec)
            self._held.clear()
            self._claims.clear()

    def counts(self) -> dict[str, int]:
        """Faults injected so far, by kind (every kind listed, zeros included)."""
        with self._lock:
            return {kind.value: self._counts[kind] for kind in FaultKind}

    def roll(self, kind: FaultKind) -> bool:
        """Draw for one fault of this kind at the current rate; counted when it happens."""
        with self._lock:
            spec, dice = self._spec, self._dice[kind]
        if not dice.roll(spec.rate(kind)):
            return False
        with self._lock:
            self._counts[kind] += 1
        return True

    # -- pipe: duplicates arriving after the dedup window

    def extra_entries(
        self, sent: Sequence[SendMessageBatchRequestEntryTypeDef]
    ) -> list[SendMessageBatchRequestEntryTypeDef]:
        """Duplicates of some entries the pipe just sent, to send after them.

        SQS FIFO drops a re-send with the same MessageDeduplicationId within 5 minutes, so a
        duplicate that reaches the consumer is one re-sent after that window: it gets a fresh
        dedup id. Each is held back for 0 to 2 later batches, so it may arrive after newer changes
        of the same user, as a late re-send does.
        """
        released_entries: list[SendMessageBatchRequestEntryTypeDef] = []
        with self._lock:
            still: list[tuple[int, SendMessageBatchRequestEntryTypeDef]] = []
            for remaining, entry in self._held:
                if remaining <= 0:
                    released_entries.append(entry)
                else:
                    still.append((remaining - 1, entry))
            self._held = still
        for entry in sent:
            if not self.roll(FaultKind.DUPLICATE):
                continue
            with self._lock:
                self._duplicate_serial += 1
                serial = self._duplicate_serial
                wait = self._dice[FaultKind.DUPLICATE].below(3)
            duplicate: SendMessageBatchRequestEntryTypeDef = {
                **entry,
                "Id": f"dup{serial}",
                "MessageDeduplicationId": _fresh_dedup_id(
                    entry.get("MessageDeduplicationId") or entry["MessageBody"], serial
                ),
            }
            if wait == 0:
                released_entries.append(duplicate)
            else:
                with self._lock:
                    self._held.append((wait - 1, duplicate))
        return released_entries

    # -- poller: crash before acknowledging, delay past the visibility timeout

    def hold_seconds(self, message_ids: Sequence[str]) -> float:
        """How long the poller holds this batch before invoking (0: not at all)."""
        if not message_ids or not self.roll(FaultKind.DELAY):
            return 0.0
        return self._visibility_timeout + _DELAY_MARGIN_SECONDS

    def crashes(self, message_ids: Sequence[str]) -> bool:
        """True: the handler ran but the process 'died' before deleting anything."""
        return bool(message_ids) and self.roll(FaultKind.CRASH)

    # -- store: throttling, transaction conflicts, a chunked commit dying midway

    def intercept(self, target: str, body: bytes) -> ProxyAnswer | None:
        """An AWS-shaped error to answer instead of relaying the request, or None to relay."""
        if not target.startswith(_DYNAMODB_PREFIX):
            return None
        operation = target[len(_DYNAMODB_PREFIX) :]
        if operation not in _DATA_PLANE:
            return None
        if operation == "TransactWriteItems":
            actions = _transact_items(body)
            if self._chunk_step_dies(actions):
                return _error_answer(
                    "ValidationException",
                    "orgsync chaos: the committing process died between the steps of a "
                    "chunked commit",
                )
        if self.roll(FaultKind.THROTTLE):
            if self._dice[FaultKind.THROTTLE].below(2):
                return _error_answer(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. "
                    "Consider increasing your provisioning level with the UpdateTable API.",
                )
            return _error_answer(
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
                error_type="com.amazon.coral.availability#ThrottlingException",
            )
        if operation == "TransactWriteItems" and self.roll(FaultKind.CONFLICT):
            return _conflict_answer(len(actions), self._dice[FaultKind.CONFLICT])
        return None

    def _chunk_step_dies(self, actions: list[dict[str, Any]]) -> bool:
        """Track claims (a lone REPLICATION put with pending_seq); maybe fail a later step."""
        claim = _claimed_user(actions)
        if claim is not None:
            with self._lock:
                self._claims.add(claim)
            return False
        with self._lock:
            claimed = [pk for pk in _replication_keys(actions) if pk in self._claims]
        if not claimed:
            return False
        finished = _final_put(actions)
        if self.roll(FaultKind.CHUNK):
            with self._lock:
                self._claims.difference_update(claimed)
            return True
        if finished is not None:
            with self._lock:
                self._claims.discard(finished)
        return False


def _fresh_dedup_id(original: str, serial: int) -> str:
    suffix = f"-dup{serial}-{uuid.uuid4().hex[:8]}"
    if len(original) + len(suffix) > _MAX_DEDUP_ID:
        original = hashlib.sha256(original.encode()).hexdigest()
    return (original + suffix)[:_MAX_DEDUP_ID]


def _transact_items(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return []
    items = parsed.get("TransactItems") if isinstance(parsed, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _replication_item(action: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The key or item an action touches, when it is a REPLICATION record."""
    for kind, field_name in (("Put", "Item"), ("ConditionCheck", "Key"), ("Update", "Key")):
        body = action.get(kind)
        if isinstance(body, dict):
            item = body.get(field_name)
            if isinstance(item, dict) and item.get("sk", {}).get("S") == REPLICATION_SORT_KEY:
                return item
    return None


def _replication_keys(actions: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for action in actions:
        item = _replication_item(action)
        if item is not None:
            keys.append(str(item.get("pk", {}).get("S", "")))
    return keys


def _claimed_user(actions: list[dict[str, Any]]) -> str | None:
    if len(actions) != 1 or "Put" not in actions[0]:
        return None
    item = _replication_item(actions[0])
    if item is None or PENDING_ATTRIBUTE not in item:
        return None
    return str(item.get("pk", {}).get("S", ""))


def _final_put(actions: list[dict[str, Any]]) -> str | None:
    """The user whose chunked commit this lone REPLICATION put (no pending_seq) finalises."""
    if len(actions) != 1 or "Put" not in actions[0]:
        return None
    item = _replication_item(actions[0])
    if item is None or PENDING_ATTRIBUTE in item:
        return None
    return str(item.get("pk", {}).get("S", ""))


def _error_answer(code: str, message: str, *, error_type: str | None = None) -> ProxyAnswer:
    return _json_answer(400, {"__type": error_type or _ERROR_PREFIX + code, "message": message})


def _conflict_answer(action_count: int, dice: _Dice) -> ProxyAnswer:
    """TransactionCanceledException as DynamoDB sends it: one reason per action, in order."""
    count = max(1, action_count)
    conflicted = dice.below(count)
    reasons: list[dict[str, str]] = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        if index == conflicted
        else {"Code": "None"}
        for index in range(count)
    ]
    codes = ", ".join(reason["Code"] for reason in reasons)
    return _json_answer(
        400,
        {
            "__type": _ERROR_PREFIX + "TransactionCanceledException",
            "CancellationReasons": reasons,
            "Message": "Transaction cancelled, please refer cancellation reasons for specific "
            f"reasons [{codes}]",
        },
    )


def _json_answer(status: int, document: Mapping[str, Any]) -> ProxyAnswer:
    body = json.dumps(document, separators=(",", ":")).encode()
    return ProxyAnswer(
        status=status,
        body=body,
        headers=(
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
            # botocore checks DynamoDB responses against this CRC32 when present.
            ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
        ),
    )
