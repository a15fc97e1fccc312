"""`orgsync users …`: write, read and delete user items (the replication's source).

Thin Typer wiring over orgsync.ops.users; must not import other command modules."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from orgsync.cli.render import new_table, out_console, print_json
from orgsync.cli.root import JsonOption, clients_of, settings_of, users_app
from orgsync.ops import users


@users_app.command("put")
def users_put(
    ctx: typer.Context,
    *,
    user_id: Annotated[str, typer.Argument(help="User id, e.g. an Auth0 subject.")] = (
        users.DEFAULT_USER_ID
    ),
    email: Annotated[str, typer.Option(help="Email address.")] = users.DEFAULT_EMAIL,
    user_status: Annotated[
        str, typer.Option("--status", help="ACTIVE, SUSPENDED, …")
    ] = users.DEFAULT_STATUS,
    org: Annotated[
        list[str] | None,
        typer.Option("--org", help="Organization id (repeat). Default: org-acme, org-globex."),
    ] = None,
    no_orgs: Annotated[bool, typer.Option("--no-orgs", help="Belong to no organization.")] = False,
) -> None:
    """Write a user item (defaults reproduce the seed's put-item)."""
    settings = settings_of(ctx)
    organizations = () if no_orgs else tuple(org or users.DEFAULT_ORGANIZATIONS)
    user = users.User(user_id=user_id, email=email, status=user_status, organizations=organizations)
    users.put_user(clients_of(ctx).dynamodb, settings.users_table, user)
    out_console().print(
        f"put user [bold]{escape(user_id)}[/bold] in {settings.users_table} "
        f"(organizations: {escape(', '.join(organizations)) or 'none'})",
        highlight=False,
    )


@users_app.command("get")
def users_get(
    ctx: typer.Context, user_id: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """Show one user item (strongly consistent read)."""
    user = users.get_user(clients_of(ctx).dynamodb, settings_of(ctx).users_table, user_id)
    if as_json:
        print_json(dataclasses.asdict(user))
        return
    table = new_table("user id", "email", "status", "organizations")
    table.add_row(user.user_id, user.email, user.status, ", ".join(user.organizations))
    out_console().print(table)


@users_app.command("delete")
def users_delete(ctx: typer.Context, user_id: Annotated[str, typer.Argument()]) -> None:
    """Delete a user item; its memberships go when the replication sees the REMOVE."""
    settings = settings_of(ctx)
    existed = users.delete_user(clients_of(ctx).dynamodb, settings.users_table, user_id)
    verdict = "deleted user" if existed else "no such user (nothing deleted):"
    out_console().print(f"{verdict} {escape(user_id)} in {settings.users_table}", highlight=False)
