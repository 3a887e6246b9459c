"""`flask --app app_b tokens ...`: issue, list and revoke tokens (runbook: README.md, "Tokens").

A mistake (bad name, unknown user or id, bad duration) is one `Error: ...` line on stderr and
exit status 1, with nothing changed.
"""
import functools
import re
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup

from .store import StoreError, StoreUnavailable

tokens = AppGroup("tokens", help="Issue, list and revoke app_b's tokens.")

DURATION = re.compile(r"([0-9]{1,9})([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_DAYS = 3650


def parse_duration(text):
    """Seconds in `90s`, `15m`, `12h`, `30d`; ClickException if it is not one of those."""
    match = DURATION.fullmatch(text)
    seconds = int(match[1]) * UNIT_SECONDS[match[2]] if match else 0
    if not 0 < seconds <= MAX_DURATION_DAYS * 86400:
        raise click.ClickException(f"invalid duration {text!r}: use a number and s, m, h or d "
                                   f"(90s, 15m, 12h, 30d), at most {MAX_DURATION_DAYS}d")
    return seconds


def when(timestamp):
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line_errors(command):
    """The store's refusals become click's one-line error instead of a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except StoreError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        except StoreUnavailable as exc:
            raise click.ClickException(f"database unavailable: {exc}") from None
    return run


def store():
    return current_app.extensions["token_store"]


@tokens.command("create")
@click.argument("username")
@click.option("--expires-in", metavar="DURATION", help="90s, 15m, 12h, 30d ... (default: never)")
@one_line_errors
def create(username, expires_in):
    """Create a new token for USERNAME (and the user, if new); the token is the last line."""
    seconds = parse_duration(expires_in) if expires_in is not None else None
    token_id, token, expires_at = store().create_token(username, seconds)
    click.echo(f"token {token_id} for {username}, expires {when(expires_at)}; shown only now:")
    click.echo(token)


@tokens.command("list")
@one_line_errors
def list_tokens():
    """One line per token: user, id, created, expires, state (never the token)."""
    now = store().now()
    table = [("USERNAME", "ID", "CREATED", "EXPIRES", "STATE")]
    table += [(t.username, str(t.token_id), when(t.created_at), when(t.expires_at), t.state(now))
              for t in store().list_tokens()]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@tokens.command("revoke")
@click.argument("username", required=False)
@click.option("--id", "token_id", metavar="ID", help="revoke only this token (an id from `tokens list`)")
@one_line_errors
def revoke(username, token_id):
    """Revoke every token of USERNAME, or one token with --id; refused from the next request on."""
    if (username is None) == (token_id is None):
        raise click.ClickException("give a USERNAME or --id ID (one of them)")
    if token_id is not None:
        if not re.fullmatch(r"[0-9]{1,19}", token_id):
            raise StoreError(f"no token with id {token_id!r}")
        revoked = store().revoke_token(int(token_id))
        click.echo(f"token {token_id} {'revoked' if revoked else 'was revoked already'}")
    else:
        click.echo(f"revoked {store().revoke_user(username)} active token(s) of {username}")
