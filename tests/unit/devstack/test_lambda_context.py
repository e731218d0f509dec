"""The devstack's Lambda context: Powertools' typed context with real values, counting
down from the function's timeout."""

from __future__ import annotations

import time

from audiolift_testkit import LocalLambdaContext
from aws_lambda_powertools.utilities.typing import LambdaContext


def test_the_context_counts_down_from_the_function_timeout() -> None:
    context = LocalLambdaContext("f", timeout_seconds=2)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.2)
    second = context.get_remaining_time_in_millis()
    assert 1_900 <= first <= 2_000
    assert first - second >= 150
    assert LocalLambdaContext("g", timeout_seconds=0).get_remaining_time_in_millis() == 0


def test_it_is_powertools_typed_context_with_the_function_values() -> None:
    context = LocalLambdaContext(
        "audiolift-processor", timeout_seconds=30, memory_limit_in_mb=2048, region="eu-west-1"
    )
    assert isinstance(context, LambdaContext)
    assert context.function_name == "audiolift-processor"
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == 2048
    assert context.invoked_function_arn == (
        "arn:aws:lambda:eu-west-1:123456789012:function:audiolift-processor"
    )
    assert context.log_group_name == "/aws/lambda/audiolift-processor"
    assert context.log_stream_name.endswith(context.aws_request_id.replace("-", ""))
    assert LocalLambdaContext("f", timeout_seconds=1).aws_request_id != context.aws_request_id
