"""What botocore's errors mean: the code sets, their classification, and ``translated``,
the one place adapters turn them into audiolift errors. Errors are built the way botocore
builds them (a parsed error response), so no AWS is needed."""

from __future__ import annotations

from typing import Any

import pytest
from audiolift_core.aws import (
    CHANGED_ERROR_CODES,
    GONE_ERROR_CODES,
    IGNORE,
    TRANSIENT_ERROR_CODES,
    error_code,
    http_status,
    is_gone,
    is_transient,
    translated,
)
from audiolift_core.errors import AudioliftError, Conflict, NotFound, TransientError
from botocore.exceptions import ClientError, EndpointConnectionError


def client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "secret internals"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "AnyOperation")


def test_code_and_status_are_read_from_the_response() -> None:
    error = client_error("SlowDown", 503)
    assert (error_code(error), http_status(error)) == ("SlowDown", 503)
    assert http_status(ClientError({}, "Op")) == 0 and error_code(ClientError({}, "Op")) == ""


def test_the_code_sets_do_not_overlap() -> None:
    assert not TRANSIENT_ERROR_CODES & GONE_ERROR_CODES
    assert not TRANSIENT_ERROR_CODES & CHANGED_ERROR_CODES
    assert not GONE_ERROR_CODES & CHANGED_ERROR_CODES


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("ProvisionedThroughputExceededException"), True),
        (client_error("Anything", 500), True),
        (client_error("TooManyRequests", 429), True),
        (client_error("AccessDenied", 403), False),
        (client_error("NoSuchKey", 404), False),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ValueError("not botocore"), False),
    ],
)
def test_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_gone_by_code_or_by_404() -> None:
    assert is_gone(client_error("NoSuchUpload"))
    assert is_gone(client_error("", 404))
    assert not is_gone(client_error("AccessDenied", 403))


def test_translated_maps_gone_codes_and_the_rest() -> None:
    with (
        pytest.raises(NotFound, match=r"^Gone\.$") as gone,
        translated("Reading", gone=NotFound("Gone.")),
    ):
        raise client_error("NoSuchKey", 404)
    assert isinstance(gone.value.__cause__, ClientError)
    conflict = Conflict("taken")
    with (
        pytest.raises(Conflict, match="taken"),
        translated("Writing", codes={"ConditionalCheckFailedException": conflict}),
    ):
        raise client_error("ConditionalCheckFailedException")
    with (
        pytest.raises(TransientError, match=r"^Reading failed for now"),
        translated("Reading", gone=NotFound()),
    ):
        raise client_error("SlowDown", 503)
    with pytest.raises(AudioliftError, match=r"^Reading failed\.$") as other, translated("Reading"):
        raise client_error("AccessDenied", 403)
    assert type(other.value) is AudioliftError and "internals" not in other.value.message


def test_translated_makes_a_lazy_meaning_only_when_needed() -> None:
    made: list[str] = []

    def refusal() -> AudioliftError:
        made.append("looked up")
        return Conflict("refused")

    with translated("Writing", codes={"ConditionalCheckFailedException": refusal}):
        pass
    assert made == []
    with (
        pytest.raises(Conflict),
        translated("Writing", codes={"ConditionalCheckFailedException": refusal}),
    ):
        raise client_error("ConditionalCheckFailedException")
    assert made == ["looked up"]


def test_translated_can_ignore_gone_and_passes_other_exceptions() -> None:
    with translated("Aborting", gone=IGNORE):
        raise client_error("NoSuchUpload", 404)
    with pytest.raises(KeyError), translated("Reading"):
        raise KeyError("ours")


def test_translated_is_also_a_decorator() -> None:
    @translated("Deleting", gone=NotFound("No such job."))
    def delete() -> None:
        raise client_error("NoSuchKey", 404)

    with pytest.raises(NotFound, match="No such job"):
        delete()
