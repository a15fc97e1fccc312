"""Where the logs of a long-running local command go: warnings on the terminal, the rest to a file.

The consumer logs one JSON line per record (Powertools, as in CloudWatch), and the pipe and
poller log beside it: on a terminal that also shows a live status line, that is hundreds of KB
in minutes. So the terminal gets warnings and errors (above the status line, through Rich), and
`--log-file` gets every record at `--log-level` in the consumer's own JSON format.

It configures Powertools' logger of the consumer's service before the handler is imported: the
handler's `Logger(service=...)` then finds it configured and logs through these handlers.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

# The consumer's POWERTOOLS_SERVICE_NAME (template.yaml), and the root of orgsync's own loggers.
SERVICE_LOGGER = "orgsync"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def configure_local_logging(
    console: Console, *, level: LogLevel | None, log_file: Path | None
) -> LogLevel:
    """Route orgsync's logs; returns the consumer's log level (the template's LogLevel).

    Without a file, `level` (default WARNING) is what the terminal shows. With a file, the file
    gets `level` (default INFO) and the terminal still only warnings and errors.
    """
    from aws_lambda_powertools import Logger  # noqa: PLC0415 - only for the local commands

    terminal_level = LogLevel.WARNING
    if log_file is None:
        effective = level or LogLevel.WARNING
        terminal_level = effective
        file_handler: logging.Handler = logging.NullHandler()
    else:
        effective = level or LogLevel.INFO
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(effective)
    # The consumer's logger, configured first: JSON lines to the file, as Lambda would log them.
    Logger(
        service=SERVICE_LOGGER,
        level=_lowest(effective, terminal_level),
        logger_handler=file_handler,
    )
    terminal = RichHandler(
        console=console, level=terminal_level, show_path=False, rich_tracebacks=False
    )
    terminal.setFormatter(logging.Formatter("%(message)s"))
    # orgsync's records reach it by propagation; other libraries' (werkzeug, botocore) at
    # WARNING, the root's level.
    logging.basicConfig(level=logging.WARNING, handlers=[terminal], force=True)
    return effective


def _lowest(first: LogLevel, second: LogLevel) -> str:
    return min(first, second, key=logging.getLevelName).value
