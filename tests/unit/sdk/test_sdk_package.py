"""The package's public surface and metadata (as httpx's test_exported_members checks)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import ModuleType

import audiolift
import pytest
from audiolift import Job

ROOT = Path(__file__).resolve().parents[3]


def test_everything_public_is_in_all_and_nothing_else() -> None:
    public = sorted(
        name
        for name, value in vars(audiolift).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, ModuleType)
    )
    assert sorted(audiolift.__all__) == public
    assert all(hasattr(audiolift, name) for name in audiolift.__all__)


def test_the_version_is_written_once() -> None:
    from audiolift._version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    attr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert attr["version"] == {"attr": "audiolift._version.__version__"}
    assert audiolift.__version__ == __version__


def test_a_job_without_a_part_plan_has_none_made_up() -> None:
    job = Job.from_api({"job_id": "j1", "status": "awaiting_upload", "size": 10**9})
    with pytest.raises(audiolift.ConflictError) as caught:
        job.plan()
    assert caught.value.code == "not_resumable"
