"""`orgsync users …`: write, read and delete user items (the replication's source).

Thin Typer wiring over orgsync.ops.users; must not import other command modules. `put` refuses,
writing nothing, what the replication could not carry (`schema.users.replication_problem`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from orgsync.cli.render import new_table, out_console, print_json
from orgsync.cli.root import JsonOption, RefusedInputError, clients_of, settings_of, users_app
from orgsync.ops import users


@users_app.command("put")
def users_put(
    ctx: typer.Context,
    *,
    user_id: Annotated[
        str,
        typer.Argument(
            help="User id, e.g. an Auth0 subject: at most 123 ASCII letters, digits and "
            "punctuation marks (the pipe's message group id is USER#<id>)."
        ),
    ] = users.DEFAULT_USER_ID,
    email: Annotated[
        str | None,
        typer.Option(
            help=f"Email address. Default: {users.DEFAULT_EMAIL} for the default user, "
            "none (no email attribute) for any other."
        ),
    ] = None,
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
    user = users.User(
        user_id=user_id,
        email=_email(email, user_id),
        status=_nonempty(user_status, "--status"),
        organizations=_organizations(org, no_orgs=no_orgs),
    )
    try:  # before any client exists: refused input never waits on a region or a network
        users.check_replicable(user)
    except users.UnreplicableUserError as exc:
        raise RefusedInputError(f"{exc}; nothing was written") from exc
    users.put_user(clients_of(ctx).dynamodb, settings.users_table, user)
    no_email = "; no email" if user.email is None else ""
    out_console().print(
        f"put user [bold]{escape(user_id)}[/bold] in {settings.users_table} "
        f"(organizations: {escape(', '.join(user.organizations)) or 'none'}{no_email})",
        highlight=False,
    )


def _email(option: str | None, user_id: str) -> str | None:
    if option is None:
        return users.default_email(user_id)
    return _nonempty(option, "--email")


def _nonempty(value: str, flag: str) -> str:
    if not value.strip():
        raise RefusedInputError(f"{flag} is empty: give a value, or leave the option out")
    return value


def _organizations(org: list[str] | None, *, no_orgs: bool) -> tuple[str, ...]:
    if no_orgs and org:
        raise RefusedInputError("--no-orgs and --org contradict each other: give one of them")
    if no_orgs:
        return ()
    return tuple(org) if org else users.DEFAULT_ORGANIZATIONS


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
    table.add_row(user.user_id, user.email or "", user.status, ", ".join(user.organizations))
    out_console().print(table)


@users_app.command("delete")
def users_delete(ctx: typer.Context, user_id: Annotated[str, typer.Argument()]) -> None:
    """Delete a user item; its memberships go when the replication sees the REMOVE."""
    settings = settings_of(ctx)
    existed = users.delete_user(clients_of(ctx).dynamodb, settings.users_table, user_id)
    verdict = "deleted user" if existed else "no such user (nothing deleted):"
    out_console().print(f"{verdict} {escape(user_id)} in {settings.users_table}", highlight=False)
