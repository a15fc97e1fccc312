"""Real-shaped user items and stream-record bodies for the benchmarks (shape: events/*.json).

Pure data builders: no boto3, no I/O. Every benchmark phase writes and decodes these same
shapes, so the ceiling, the pipeline and the hot path are measured on identical items.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from orgsync.domain.model import ReplicationState, UserState
from orgsync.domain.rule import fingerprint
from orgsync.schema.keys import user_key
from orgsync.schema.users import User, encode_user

STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/poc-users/stream/2026-11-24T00:00:00.000"
)
ORGS_PER_USER = 2
ORG_POOL = 64
# Sequence numbers of real streams are ~28 digits: big enough to exercise int parsing.
SEQUENCE_BASE = 4421584500000000017450439091
EMAIL_DOMAIN = "example.org"
WRITE_MARK = "+w"


AUTH0_PREFIX = "auth0|"
# Users a run writes to an endpoint it did not start: `orgsync-bench-<run id>-<24 hex>`.
MARKED_PREFIX = "orgsync-bench-"


@dataclass(frozen=True)
class UserIds:
    """How a run names its users. On its own embedded store: Auth0-style subjects, the seed's
    shape. On someone else's endpoint: ids under a marked per-run prefix, so that nobody takes
    them for real users and the run can find and remove exactly what it wrote."""

    prefix: str = AUTH0_PREFIX

    @classmethod
    def marked(cls, run_id: str) -> UserIds:
        return cls(f"{MARKED_PREFIX}{run_id}-")

    def of(self, index: int) -> str:
        digest = hashlib.blake2b(str(index).encode(), digest_size=12).hexdigest()
        return f"{self.prefix}{digest}"


# The ids of runs on their own store (and of the phases that write only to scratch tables).
SEED_SHAPED_IDS = UserIds()


def user_id_for(index: int) -> str:
    """An Auth0-style subject (`auth0|<24 hex>`), the id shape the seed used."""
    return SEED_SHAPED_IDS.of(index)


def orgs_for(index: int, write: int) -> tuple[str, ...]:
    """Two orgs out of a pool; the second moves with every write, so writes change membership."""
    first = index % ORG_POOL
    second = (index + 1 + write) % ORG_POOL
    if second == first:
        second = (second + 1) % ORG_POOL
    return (f"org-{first:03d}", f"org-{second:03d}")


def email_for(index: int, token: int) -> str:
    """An address carrying a write token: the lag probe recognises which write it sees."""
    return f"user{index}{WRITE_MARK}{token}@{EMAIL_DOMAIN}"


def token_of(email: str) -> int | None:
    """The write token of an address made by `email_for`; None for anything else."""
    local = email.partition("@")[0]
    _, separator, token = local.rpartition(WRITE_MARK)
    return int(token) if separator and token.isdigit() else None


def user_item(
    user_id: str, *, email: str, organizations: tuple[str, ...], status: str = "ACTIVE"
) -> dict[str, Any]:
    """A users-table item exactly as `orgsync users put` writes it (organizations as L of S)."""
    return encode_user(User(user_id, email, status, organizations))


def stream_record_body(
    user_id: str,
    *,
    seq: int,
    email: str,
    organizations: tuple[str, ...],
    old_organizations: tuple[str, ...] | None = None,
    event_id: str | None = None,
) -> str:
    """One SQS message body as EventBridge Pipes delivers a MODIFY (INSERT without old orgs)."""
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": 1764000000.0,
        "Keys": user_key(user_id),
        "NewImage": user_item(user_id, email=email, organizations=organizations),
        "SequenceNumber": str(seq),
        "SizeBytes": 310,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old_organizations is not None:
        stream["OldImage"] = user_item(user_id, email=email, organizations=old_organizations)
    record = {
        "eventID": event_id or hashlib.md5(str(seq).encode(), usedforsecurity=False).hexdigest(),
        "eventName": "INSERT" if old_organizations is None else "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": stream,
        "eventSourceARN": STREAM_ARN,
    }
    return json.dumps(record, separators=(",", ":"))


@dataclass(frozen=True)
class HotPathSample:
    """One SQS message body and the REPLICATION record the consumer would read for its user."""

    body: str
    current: ReplicationState


def hot_path_samples(count: int) -> list[HotPathSample]:
    """MODIFY records of distinct users, each moving one org against a replicated state.

    Realistic case: the user is replicated with its previous orgs and attributes, so planning
    takes the incremental path (one put, one delete), like most production changes.
    """
    samples: list[HotPathSample] = []
    for index in range(count):
        user_id = user_id_for(index)
        email = email_for(index, 0)
        old_orgs, new_orgs = orgs_for(index, 0), orgs_for(index, 1)
        seq = SEQUENCE_BASE + 2 * index + 1
        body = stream_record_body(
            user_id, seq=seq, email=email, organizations=new_orgs, old_organizations=old_orgs
        )
        replicated = UserState(email=email, status="ACTIVE", organizations=frozenset(old_orgs))
        current = ReplicationState(
            seq=seq - 1,
            revision=3,
            orgs=replicated.organizations,
            fingerprint=fingerprint(replicated),
        )
        samples.append(HotPathSample(body=body, current=current))
    return samples
