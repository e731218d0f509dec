"""The package's public surface and metadata (as httpx's test_exported_members checks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
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

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "audiolift._version.__version__"
    }
    assert audiolift.__version__ == __version__


def test_a_job_without_a_part_plan_has_none_made_up() -> None:
    job = Job.from_api({"job_id": "j1", "status": "awaiting_upload", "size": 10**9})
    with pytest.raises(audiolift.ConflictError) as caught:
        job.plan()
    assert caught.value.code == "not_resumable"


def test_the_wheel_ships_the_format_table(tmp_path: Path) -> None:
    """`pip install .` gets the magic-byte table the SDK sniffs with: the two symlinks into
    layers/core become files in the wheel, and the installed package reads them."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "clients" / "python", source / "clients" / "python", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    table = source / "layers" / "core" / "audiolift_core"
    table.mkdir(parents=True)
    for name in ("formats.py", "formats.json"):
        shutil.copy(ROOT / "layers" / "core" / "audiolift_core" / name, table / name)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("audiolift-*.whl")
    assert wheel.name.startswith(f"audiolift-{audiolift.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"audiolift/_formats.py", "audiolift/formats.json", "audiolift/py.typed"} <= names
        shipped = archive.read("audiolift/formats.json")
        assert shipped == (ROOT / "layers/core/audiolift_core/formats.json").read_bytes()
        archive.extractall(tmp_path / "installed")
    sniffed = subprocess.run(
        [sys.executable, "-c",
         "import audiolift._formats as f; print(f.sniff(b'fLaC' + bytes(64)).name)"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "installed")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert sniffed.stdout.strip() == "flac", sniffed.stderr
