"""What the browser tests get from their fixtures (a module of its own so that test
modules can import it; conftest modules are not for importing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BrowserStack:
    api_url: str
    s3_endpoint: str
    api_key: str
    bucket: str
    table: str
    s3: Any
    dynamodb: Any
    has_processor: bool
