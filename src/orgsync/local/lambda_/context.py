"""The `context` object Lambda's Python runtime passes to a handler, timed from the Timeout."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime


class LambdaContext:
    """What Lambda's Python runtime passes as `context`, timed from the template's Timeout."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        function_version: str = "$LATEST",
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{today}/[{function_version}]{uuid.uuid4().hex}"
        self.identity: object | None = None
        self.client_context: object | None = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
