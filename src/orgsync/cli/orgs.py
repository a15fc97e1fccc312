"""`orgsync orgs …`: read organization memberships (the replication's output).

Thin Typer wiring over orgsync.ops.orgs; must not import other command modules."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from orgsync.cli.render import new_table, out_console, print_json
from orgsync.cli.root import JsonOption, clients_of, orgs_app, settings_of
from orgsync.ops import orgs


@orgs_app.command("members")
def orgs_members(
    ctx: typer.Context, org_id: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """List an organization's members (one paginated Query)."""
    settings = settings_of(ctx)
    members = orgs.list_members(clients_of(ctx).dynamodb, settings.organizations_table, org_id)
    if as_json:
        print_json([dataclasses.asdict(member) for member in members])
        return
    table = new_table("user id", "email", "status", "source seq", title=f"members of {org_id}")
    for member in members:
        table.add_row(
            member.user_id,
            member.email or "",
            member.status or "",
            str(member.source_seq),
        )
    out_console().print(table)
    out_console().print(f"{len(members)} member(s)", highlight=False)
