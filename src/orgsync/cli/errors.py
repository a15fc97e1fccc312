"""What the CLI's error boundary says: one line per failure, ending in what to do about it.

botocore's own messages name the symptom ("You must specify a region.", a whole HTML error page);
an operator needs the option to change. No command logic here, and no emails in any line.
The boundary (`cli.root`) imports this module when a command has failed, not before: it brings
boto3 and botocore.
"""

from __future__ import annotations

import re

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from orgsync.cli.clients import effective_region, known_region
from orgsync.cli.render import first_line
from orgsync.cli.settings import CliSettings

LOCAL_HINT = (
    "for the local stack, run `orgsync local up` and pass --endpoint-url http://127.0.0.1:4566"
)
_NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)
_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
    }
)
_HTML_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)


def describe_error(exc: BaseException, settings: CliSettings | None = None) -> str:
    """One line an operator can act on; `settings` (where the command went) sharpens the hint."""
    settings = settings or CliSettings()
    if isinstance(exc, ClientError):
        return _describe_client_error(exc, settings)
    if isinstance(exc, BotoCoreError):
        return _describe_botocore_error(exc, settings)
    return first_line(str(exc)) or type(exc).__name__


def _describe_client_error(exc: ClientError, settings: CliSettings) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    raw = str(error.get("Message", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if _is_html(raw):
        return f"{exc.operation_name}: {_html_summary(raw, status)}{_html_hint(settings)}"
    hint = ""
    if code in _NOT_FOUND_CODES:
        hint = f" ({_where(settings)}: {_names_hint(settings)})"
    elif code in _AUTH_CODES:
        hint = " (check --profile / AWS_PROFILE and its credentials, and --region)"
    return f"{exc.operation_name}: {code}: {first_line(raw)}{hint}"


def _describe_botocore_error(exc: BotoCoreError, settings: CliSettings) -> str:
    # Without its full stop: a hint follows after a colon or in brackets.
    message = (first_line(str(exc)) or type(exc).__name__).rstrip(".")
    region = settings.region
    if isinstance(exc, NoRegionError):
        return f"no AWS region is configured: pass --region or set AWS_REGION ({LOCAL_HINT})"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"no usable AWS credentials ({message}): pass --profile or set AWS_PROFILE, "
            f"or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({LOCAL_HINT})"
        )
    if isinstance(exc, ProfileNotFound):
        return f"{message}: check --profile / AWS_PROFILE (profiles live in ~/.aws/config)"
    if isinstance(exc, InvalidRegionError):
        return f"{message}: check --region / AWS_REGION (e.g. us-east-1)"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return f"{message} ({_connection_hint(settings)})"
    if isinstance(exc, ReadTimeoutError):
        return f"{message} (the endpoint accepted the connection but did not answer; check it)"
    if region is not None and not known_region(region):
        return f"{message} (region {region} is not one AWS has: check --region)"
    return message


def _connection_hint(settings: CliSettings) -> str:
    if settings.endpoint_url is not None:
        return "is the stack running? start it with `orgsync local up`, or check --endpoint-url"
    region = effective_region(settings)
    if region is not None and not known_region(region):
        return f"region {region} is not one AWS has: check --region"
    return "check your network, --region, or pass --endpoint-url for a local stack"


def _is_html(message: str) -> bool:
    head = message.lstrip()[:64].lower()
    return head.startswith(("<!doctype html", "<html"))


def _html_summary(message: str, status: object) -> str:
    title = _HTML_TITLE.search(message)
    what = first_line(title.group(1)) if title else "an HTML error page"
    prefix = f"HTTP {status}" if isinstance(status, int) else "HTTP error"
    return f"{prefix} from the endpoint, an HTML page ({what}) instead of an AWS error"


def _html_hint(settings: CliSettings) -> str:
    region = effective_region(settings)
    if region is not None and not known_region(region):
        return f" (region {region} is not one AWS has, and emulators fail on it: check --region)"
    return (
        f" (the server behind {settings.endpoint_url or 'the endpoint'} failed: check "
        "--endpoint-url and --region, and the server's own log)"
    )


def _where(settings: CliSettings) -> str:
    region = effective_region(settings) or "the default region"
    endpoint = f" at {settings.endpoint_url}" if settings.endpoint_url else ""
    prefix = repr(settings.name_prefix) if settings.name_prefix else "none"
    return f"looked in region {region}{endpoint}, name prefix {prefix}"


def _names_hint(settings: CliSettings) -> str:
    if settings.names.given:
        return "check --endpoint-url, --region and the --users-table / --queue … names"
    return (
        "check --endpoint-url, --region and --name-prefix, or give exact names with "
        "--users-table, --organizations-table, --queue, --dead-letter-queue"
    )
