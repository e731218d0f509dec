"""The ``context`` a Lambda runtime passes to a handler, for running handlers locally.

``LocalLambdaContext`` is Powertools' typed ``LambdaContext`` (what the handlers are typed
against) with real values: the function's name, ARN, memory and request id, and
``get_remaining_time_in_millis`` counting down to a deadline. It overrides the public
properties instead of setting the library's private attributes.

Imports Powertools and the standard library only: the SAM smoke test loads this file
into an interpreter that sees nothing but a built function and its layers.
"""

from __future__ import annotations

import time
import uuid

from aws_lambda_powertools.utilities.typing import LambdaContext

LOCAL_ACCOUNT_ID = "123456789012"
# Lambda's memory for the functions when nothing says otherwise (1 vCPU from 1769 MB).
DEFAULT_MEMORY_MB = 1769


class LocalLambdaContext(LambdaContext):
    """``LocalLambdaContext("audiolift-processor", timeout_seconds=900)``: the invocation
    starts now and ends ``timeout_seconds`` later."""

    def __init__(
        self,
        function_name: str,
        *,
        timeout_seconds: float,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB,
        region: str = "us-east-1",
        function_version: str = "$LATEST",
        aws_request_id: str | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.region = region
        self.deadline = time.monotonic() + timeout_seconds
        self._local_name = function_name
        self._local_version = function_version
        self._local_memory = memory_limit_in_mb
        self._local_request_id = aws_request_id or str(uuid.uuid4())
        self._local_stream = time.strftime("%Y/%m/%d/[$LATEST]") + self._local_request_id.replace(
            "-", ""
        )

    @property
    def function_name(self) -> str:
        return self._local_name

    @property
    def function_version(self) -> str:
        return self._local_version

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT_ID}:function:{self._local_name}"

    @property
    def memory_limit_in_mb(self) -> int:
        return self._local_memory

    @property
    def aws_request_id(self) -> str:
        return self._local_request_id

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self._local_name}"

    @property
    def log_stream_name(self) -> str:
        return self._local_stream

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        # An instance method here (the typed stub's is static): the deadline is per call.
        return max(0, int((self.deadline - time.monotonic()) * 1000))
