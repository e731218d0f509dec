"""GET /v1/limits: what a file may be, how large a file of each format is analysed within
the processor's timeout, and what analysis costs."""

from __future__ import annotations

from typing import Any

from audiolift_core.limits import limits_document
from fastapi import APIRouter

from ..dependencies import AuthenticatedRoute, Owner, Service, error_responses
from ..models import LimitsResponse

router = APIRouter(prefix="/v1", route_class=AuthenticatedRoute)


@router.get(
    "/limits",
    response_model=LimitsResponse,
    responses=error_responses(),
    summary="Upload limits, accepted formats, the largest analysable file and the cost",
)
def get_limits(svc: Service, caller: Owner) -> Any:
    return limits_document(svc.settings)
