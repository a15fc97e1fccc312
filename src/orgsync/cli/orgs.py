"""`orgsync orgs …`: read organization memberships (the replication's output).

Thin Typer wiring over orgsync.ops.orgs; must not import other command modules."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from orgsync.cli.root import (
    JsonOption,
    _clients,
    _out_console,
    _print_json,
    _settings,
    _table,
    orgs_app,
)
from orgsync.ops import orgs


@orgs_app.command("members")
def orgs_members(
    ctx: typer.Context, org_id: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """List an organization's members (one paginated Query)."""
    settings = _settings(ctx)
    members = orgs.list_members(_clients(ctx).dynamodb, settings.organizations_table, org_id)
    if as_json:
        _print_json([dataclasses.asdict(member) for member in members])
        return
    table = _table("user id", "email", "status", "source seq", title=f"members of {org_id}")
    for member in members:
        table.add_row(
            member.user_id,
            member.email or "",
            member.status or "",
            str(member.source_seq),
        )
    _out_console().print(table)
    _out_console().print(f"{len(members)} member(s)", highlight=False)
