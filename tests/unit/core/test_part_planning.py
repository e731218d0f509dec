"""Part planning and what a client may declare (pure)."""

from __future__ import annotations

import pytest
from audiolift_core.errors import EmptyUpload, InvalidRequest, UnsupportedMediaType, UploadTooLarge
from audiolift_core.parts import PartPlan, plan_parts
from audiolift_core.settings import (
    S3_MAX_OBJECT_BYTES,
    S3_MAX_PART_BYTES,
    S3_MAX_PARTS,
    S3_MIN_PART_BYTES,
    GiB,
    MiB,
    TiB,
)
from audiolift_core.uploads import MAX_FILENAME_CHARS, resolve_content_type, sanitize_filename
from hypothesis import given, settings
from hypothesis import strategies as st

DEFAULTS = {"preferred_part_bytes": 16 * MiB, "min_part_bytes": S3_MIN_PART_BYTES}


def check_plan(plan: PartPlan, size: int, min_part: int) -> None:
    assert plan.size == size
    assert 1 <= plan.part_count <= S3_MAX_PARTS
    assert plan.part_size <= S3_MAX_PART_BYTES
    numbers = range(1, plan.part_count + 1)
    if plan.part_count >= 50:
        numbers = range(plan.part_count - 2, plan.part_count + 1)
    sizes = [plan.part_bytes(n) for n in numbers]
    assert all(s == plan.part_size for s in sizes[:-1])  # equal parts ...
    assert 0 < sizes[-1] <= plan.part_size  # ... the last one smaller (or equal)
    assert plan.part_size * (plan.part_count - 1) + plan.part_bytes(plan.part_count) == size
    if plan.part_count > 1:
        assert plan.part_size >= min_part  # every part but the last meets S3's minimum
    offset, length = plan.part_range(plan.part_count)
    assert offset + length == size


@given(st.integers(min_value=1, max_value=S3_MAX_OBJECT_BYTES))
@settings(max_examples=300, deadline=None)
def test_any_size_up_to_s3s_maximum_plans_within_s3s_limits(size: int) -> None:
    check_plan(plan_parts(size, **DEFAULTS), size, S3_MIN_PART_BYTES)


@pytest.mark.parametrize(
    ("size", "part_size", "part_count"),
    [
        (1, 1, 1),
        (16 * MiB, 16 * MiB, 1),
        (16 * MiB + 1, 16 * MiB, 2),
        (100 * GiB, 16 * MiB, 6400),
        (160_000 * MiB, 16 * MiB, 10_000),  # the last size the preferred part fits
        (160_000 * MiB + 1, 17 * MiB, 9412),  # then parts grow, in whole MiB
        (5 * TiB, 525 * MiB, 9987),
    ],
)
def test_known_plans(size: int, part_size: int, part_count: int) -> None:
    plan = plan_parts(size, **DEFAULTS)
    assert (plan.part_size, plan.part_count) == (part_size, part_count)


def test_small_parts_for_tests() -> None:
    plan = plan_parts(10_000, preferred_part_bytes=1024, min_part_bytes=1024)
    assert (plan.part_size, plan.part_count) == (1024, 10)
    assert plan.part_bytes(10) == 10_000 - 9 * 1024


def test_empty_and_impossible_sizes() -> None:
    with pytest.raises(EmptyUpload):
        plan_parts(0, **DEFAULTS)
    with pytest.raises(EmptyUpload):
        plan_parts(-5, **DEFAULTS)
    with pytest.raises(UploadTooLarge):  # would need parts over S3's 5 GiB part limit
        plan_parts(S3_MAX_PARTS * S3_MAX_PART_BYTES + 1, **DEFAULTS)


def test_part_numbers_outside_the_plan() -> None:
    plan = plan_parts(3 * MiB, preferred_part_bytes=MiB, min_part_bytes=MiB)
    with pytest.raises(ValueError):
        plan.part_bytes(0)
    with pytest.raises(ValueError):
        plan.part_bytes(4)


# --- filenames and types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("take.wav", "take.wav"),
        ("../../etc/passwd.wav", "passwd.wav"),
        ("C:\\Users\\me\\Desktop\\mix.flac", "mix.flac"),
        ("a\x00b\x1fc\x7f.wav", "abc.wav"),
        ("evil\u202ewav.exe.mp3", "evilwav.exe.mp3"),  # right-to-left override
        ("zero\u200bwidth\ufeff.wav", "zerowidth.wav"),
        ("c1\x85\x9b.flac", "c1.flac"),  # C1 controls
        ("tab\tand\nnewline.wav", "tabandnewline.wav"),
        ('what?*<>|:".mp3', "what_.mp3"),
        ("  .hidden.wav. ", "hidden.wav"),
        ("e\u0301te\u0301.wav", "\u00e9t\u00e9.wav"),  # NFC
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


def test_sanitize_filename_caps_length_keeping_the_extension() -> None:
    name = sanitize_filename("x" * 500 + ".aiff")
    assert len(name) == MAX_FILENAME_CHARS and name.endswith(".aiff")


@pytest.mark.parametrize("raw", ["", "/", "../..", " . ", "dir/", "\u202e\u200b"])
def test_sanitize_filename_refuses_nothing_left(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        sanitize_filename(raw)


@pytest.mark.parametrize(
    ("filename", "declared", "resolved"),
    [
        ("a.wav", None, "audio/wav"),
        ("a.WAV", "", "audio/wav"),
        ("a.flac", "application/octet-stream", "audio/flac"),
        ("a.mp3", "audio/mpeg", "audio/mpeg"),
        ("a.ogg", "Audio/OGG; codecs=opus", "audio/ogg"),
        ("noext", "audio/wav", "audio/wav"),
        ("a.opus", "binary/octet-stream", "audio/ogg"),
    ],
)
def test_resolve_content_type(filename: str, declared: str | None, resolved: str) -> None:
    assert resolve_content_type(filename, declared) == resolved


@pytest.mark.parametrize(
    ("filename", "declared"),
    [
        ("a.txt", None),
        ("noext", None),
        ("a.wav", "video/mp4"),
        ("a.wav", "text/html"),
        ("a.exe", "audio/wav"),
        ("a.mp4", "application/octet-stream"),
    ],
)
def test_non_audio_is_refused(filename: str, declared: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        resolve_content_type(filename, declared)
