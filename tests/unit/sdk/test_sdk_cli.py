"""The ``audiolift`` CLI through its entry point, ``main(argv)``, with the fake API + S3
behind an injected client factory; output captured, exit codes checked."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from audiolift import Client, RetryConfig
from audiolift.cli import Connection, main
from sdk_fakes import API_KEY, API_URL, FakeCloud, answers, is_api, is_part_put, s3_error

DOCUMENT = {
    "schema_version": 1,
    "format": {"sample_rate": 48000, "channels": 2, "duration_seconds": 183.5, "container": "WAV"},
    "peak_dbfs": -0.5,
    "channels": [
        {"index": 0, "peak_dbfs": -0.5, "rms_dbfs": -20.25, "dc_offset": 0.0001,
         "clipped_samples": 3, "true_peak_dbtp": -0.3},
        {"index": 1, "peak_dbfs": -1.5, "rms_dbfs": -21.0, "dc_offset": -0.0002,
         "clipped_samples": 0, "true_peak_dbtp": -1.2},
    ],
    "loudness": {"integrated_lufs": -16.24, "loudness_range_lu": 6.12, "true_peak_dbtp": -0.3,
                 "momentary_max_lufs": -9.0, "short_term_max_lufs": -12.0},
    "silence": {"threshold_dbfs": -60.0, "silent_seconds": 4.5, "ratio": 0.0245,
                "longest_seconds": 2.0},
}  # fmt: skip


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Run:
    """One CLI invocation's outcome."""

    def __init__(self, code: int, out: str, err: str, connections: list[Connection]):
        self.code = code
        self.out = out
        self.err = err
        self.connections = connections


@pytest.fixture
def run(cloud: FakeCloud, retry: RetryConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no .state/stack.json of the repo's own
    env = {
        "AUDIOLIFT_API_URL": API_URL,
        "AUDIOLIFT_API_KEY": API_KEY,
        "AUDIOLIFT_STATE_DIR": str(tmp_path / "state"),
    }

    def invoke(
        *argv: str,
        stdin: io.StringIO | None = None,
        stderr: io.StringIO | None = None,
        environ: Any = None,
    ) -> Run:
        out, err = io.StringIO(), stderr or io.StringIO()
        connections: list[Connection] = []

        def factory(connection: Connection) -> Client:
            connections.append(connection)
            return Client(
                connection.api_url,
                connection.api_key,
                transport=cloud.api_transport(),
                s3_transport=cloud.s3_transport(),
                retry=retry,
            )

        code = main(
            list(argv),
            client_factory=factory,
            stdout=out,
            stderr=err,
            stdin=stdin or io.StringIO(),
            env=env if environ is None else environ,
        )
        return Run(code, out.getvalue(), err.getvalue(), connections)

    return invoke


def one_line_error(run: Run) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("audiolift: error: ")
    return lines[0]


def test_upload(run: Any, cloud: FakeCloud, audio_file: Path) -> None:
    result = run("upload", str(audio_file), "--concurrency", "3")
    assert result.code == 0, result.err
    (job,) = cloud.jobs.values()
    assert result.out == f"Uploaded take.wav as job {job.job_id} (uploaded).\n"
    assert job.object_bytes == audio_file.read_bytes()
    assert result.err == ""  # no bars: stderr is not a terminal


def test_upload_json(run: Any, cloud: FakeCloud, audio_file: Path) -> None:
    result = run("upload", str(audio_file), "--json")
    assert result.code == 0
    printed = json.loads(result.out)
    (job,) = cloud.jobs.values()
    assert printed == job.view()


def finish_after_complete(cloud: FakeCloud, *script: Any, result: Any = None) -> None:
    """When the upload completes, the job moves through ``script`` (one step a poll)."""

    def finish() -> None:
        (job,) = cloud.jobs.values()
        job.script = list(script)
        job.result = result

    cloud.on_request(is_api("POST", "/v1/uploads/.*/complete"), finish)


def test_upload_wait_prints_the_result_as_tables(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    finish_after_complete(
        cloud, ("processing", 50, None), ("completed", 100, None), result=DOCUMENT
    )
    result = run("upload", str(audio_file), "--wait")
    assert result.code == 0, result.err
    for expected in ("analysed", "-16.2 LUFS", "6.1 LU", "-0.3 dBTP", "48000 Hz", "0:03:03.500",
                     "-20.25", "0.000100", "2.5 %", "WAV"):  # fmt: skip
        assert expected in result.out


def test_upload_wait_json_prints_the_exact_document(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    finish_after_complete(cloud, ("completed", 100, None), result=DOCUMENT)
    result = run("upload", str(audio_file), "--wait", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == DOCUMENT


def test_upload_shows_progress_bars_on_a_terminal(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    finish_after_complete(
        cloud, ("processing", 50, None), ("completed", 100, None), result=DOCUMENT
    )
    err = Tty()
    result = run("upload", str(audio_file), "--wait", "--json", stderr=err)
    assert result.code == 0
    bars = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", err.getvalue())
    assert "upload take.wav" in bars and "672.0/672.0 KiB" in bars
    assert "completed" in bars and "100%" in bars
    assert json.loads(result.out) == DOCUMENT  # stdout stays clean


def test_upload_wait_for_a_failing_job_exits_3(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    finish_after_complete(
        cloud, ("failed", 0, {"code": "unsupported_format", "message": "Not audio."})
    )
    result = run("upload", str(audio_file), "--wait")
    assert result.code == 3
    assert "Not audio. [unsupported_format]" in one_line_error(result)


def test_interrupted_upload_is_resumed_by_the_next_run(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(5), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    first = run("upload", str(audio_file), "--concurrency", "1")
    assert first.code == 1
    (job,) = cloud.jobs.values()
    assert f"(job {job.job_id})" in one_line_error(first)
    cloud.part_puts.clear()

    second = run("upload", str(audio_file))  # stdin is not a terminal: resume without asking

    assert second.code == 0, second.err
    assert f"Resumed the upload of job {job.job_id}" in second.err
    assert len(cloud.jobs) == 1
    assert sorted(cloud.part_puts) == list(range(5, 12))
    assert job.object_bytes == audio_file.read_bytes()
    # Done: a third run starts a new upload.
    assert run("upload", str(audio_file)).code == 0
    assert len(cloud.jobs) == 2


def test_ctrl_c_during_an_upload_exits_130_and_the_next_run_resumes(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    def interrupt(request: Any) -> Any:
        raise KeyboardInterrupt

    cloud.inject(is_part_put(4), interrupt)
    first = run("upload", str(audio_file), "--concurrency", "1")
    assert first.code == 130
    assert "interrupted" in one_line_error(first)
    (job,) = cloud.jobs.values()
    assert sorted(job.parts) == [1, 2, 3]
    cloud.part_puts.clear()
    second = run("upload", str(audio_file))
    assert second.code == 0
    assert sorted(cloud.part_puts) == list(range(4, 12))
    assert job.object_bytes == audio_file.read_bytes()


def test_no_resume_and_the_prompt(run: Any, cloud: FakeCloud, audio_file: Path) -> None:
    cloud.inject(is_part_put(2), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    assert run("upload", str(audio_file), "--concurrency", "1").code == 1
    (first,) = cloud.jobs.values()

    declined = run("upload", str(audio_file), stdin=Tty("n\n"))
    assert declined.code == 0
    assert "Resume it? [Y/n]" in declined.err
    assert len(cloud.jobs) == 2 and first.status == "awaiting_upload"

    cloud.inject(is_part_put(2), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    assert run("upload", str(audio_file), "--concurrency", "1").code == 1
    assert run("upload", str(audio_file), "--no-resume").code == 0
    assert len(cloud.jobs) == 4


def test_upload_of_a_changed_file_is_not_resumed(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(2), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    assert run("upload", str(audio_file), "--concurrency", "1").code == 1
    audio_file.write_bytes(audio_file.read_bytes()[:-10])  # new size and mtime
    result = run("upload", str(audio_file), "--resume")
    assert result.code == 0
    assert len(cloud.jobs) == 2


def test_upload_of_a_missing_file(run: Any, tmp_path: Path) -> None:
    result = run("upload", str(tmp_path / "nope.wav"))
    assert result.code == 1
    assert "No such file" in one_line_error(result)


def test_status(run: Any, cloud: FakeCloud) -> None:
    job = cloud.add_job(status="processing", progress=42, filename="concert.flac", size=3 << 20)
    result = run("status", job.job_id)
    assert result.code == 0
    assert job.job_id in result.out
    assert "processing" in result.out and "42%" in result.out
    assert "concert.flac" in result.out and "3.0 MiB" in result.out
    as_json = run("status", job.job_id, "--json")
    assert json.loads(as_json.out) == job.view()


def test_status_and_result_show_the_verified_sha256(run: Any, cloud: FakeCloud) -> None:
    digest = "ab" * 32
    document = {**DOCUMENT, "source": {"filename": "take.wav", "size": 2048, "sha256": digest}}
    job = cloud.add_job(sha256=digest, verified_sha256=digest, result=document)
    status = run("status", job.job_id)
    assert f"sha256 declared  {digest}" in status.out
    assert f"sha256 verified  {digest}" in status.out
    result = run("result", job.job_id)
    assert digest in result.out and "2.0 KiB" in result.out


def test_upload_with_a_known_sha256(run: Any, cloud: FakeCloud, audio_file: Path) -> None:
    digest = hashlib.sha256(audio_file.read_bytes()).hexdigest()
    assert run("upload", str(audio_file), "--sha256", digest).code == 0
    (job,) = cloud.jobs.values()
    assert job.sha256 == job.completed_sha256 == digest
    wrong = run("upload", str(audio_file), "--sha256", "0" * 64, "--no-resume")
    assert wrong.code == 1
    assert "does not have the SHA-256 declared" in one_line_error(wrong)
    assert "[checksum_mismatch]" in one_line_error(wrong)
    malformed = run("upload", str(audio_file), "--sha256", "abc")
    assert malformed.code == 2 and "64 hex digits" in malformed.err


def test_upload_of_a_file_that_is_not_audio_exits_65_at_once(
    run: Any, cloud: FakeCloud, tmp_path: Path
) -> None:
    readme = tmp_path / "README.mp3"
    readme.write_text("# audiolift\n\nUpload very large audio recordings.\n")
    result = run("upload", str(readme))
    assert result.code == 65
    assert one_line_error(result) == (
        "audiolift: error: README.mp3: The file contains text, not audio (it may have been "
        "renamed to look like a sound file). Nothing was uploaded. [unsupported_format]"
    )
    assert cloud.requests == []


def test_limits(run: Any, cloud: FakeCloud) -> None:
    tables = run("limits")
    assert tables.code == 0
    lines = tables.out.splitlines()
    assert any("largest upload" in line and "5.0 GiB" in line for line in lines)
    assert any("parts per upload" in line and "10000" in line for line in lines)
    assert any("one analysis run" in line and "900 s" in line for line in lines)
    assert "analysed in one run" in tables.out  # a longer file is continued, not refused
    wav = next(line for line in lines if ".wav .wave" in line)
    assert "WAV" in wav and "52.5 MiB/s" in wav and "36.0 GiB" in wav and "$0.0021" in wav
    assert "$0.0098" in next(line for line in lines if ".flac" in line)
    assert any("per GiB analysed" in line and "$0.0021" in line for line in lines)
    assert any("price as of" in line and "2026-11-30" in line for line in lines)
    exact = run("limits", "--json")
    assert json.loads(exact.out) == cloud.limits


def test_status_of_an_unknown_job(run: Any) -> None:
    result = run("status", "f" * 32)
    assert result.code == 1
    assert one_line_error(result) == f"audiolift: error: No job '{'f' * 32}'. [not_found]"


def test_jobs(run: Any, cloud: FakeCloud) -> None:
    made = [cloud.add_job(filename=f"take{i}.wav") for i in range(3)]
    result = run("jobs")
    assert result.code == 0
    positions = [result.out.index(job.job_id) for job in reversed(made)]
    assert positions == sorted(positions)  # newest first
    assert (
        json.loads(run("jobs", "--json", "--limit", "2").out)
        == [job.view() for job in reversed(made)][:2]
    )


def test_jobs_when_there_are_none(run: Any) -> None:
    result = run("jobs")
    assert (result.code, result.out) == (0, "No jobs.\n")


def test_result(run: Any, cloud: FakeCloud) -> None:
    job = cloud.add_job(result=DOCUMENT)
    table = run("result", job.job_id)
    assert table.code == 0
    assert "-16.2 LUFS" in table.out and "channels" in table.out
    exact = run("result", job.job_id, "--json")
    assert json.loads(exact.out) == DOCUMENT


def test_result_of_an_unfinished_job(run: Any, cloud: FakeCloud) -> None:
    job = cloud.add_job(status="processing")
    result = run("result", job.job_id)
    assert result.code == 1
    assert "it is processing. [conflict]" in one_line_error(result)


def test_cancel(run: Any, cloud: FakeCloud) -> None:
    job = cloud.add_job(status="processing")
    result = run("cancel", job.job_id)
    assert (result.code, result.out) == (0, f"Job {job.job_id} is cancelled.\n")
    assert job.status == "cancelled"


def test_cancel_a_completed_job_fails_and_keeps_it(run: Any, cloud: FakeCloud) -> None:
    job = cloud.add_job(status="completed", result=DOCUMENT)
    result = run("cancel", job.job_id)
    assert result.code == 1
    assert "already completed" in one_line_error(result)
    assert job.job_id in cloud.jobs


def test_connection_from_flags_env_and_stack_file(run: Any, tmp_path: Path) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"api_url": API_URL, "api_key": API_KEY}))
    from_stack = run("--stack-file", str(stack), "jobs", environ={})
    assert from_stack.code == 0
    assert from_stack.connections == [Connection(API_URL, API_KEY)]
    # The default stack file, found in the working directory.
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "stack.json").write_text(stack.read_text())
    assert run("jobs", environ={}).connections == [Connection(API_URL, API_KEY)]
    # Flags win, also after the command.
    flagged = run("jobs", "--api-url", "https://other.test", "--api-key", "k", environ={})
    assert flagged.connections == [Connection("https://other.test", "k")]


def test_a_missing_or_unreadable_stack_file(run: Any, tmp_path: Path) -> None:
    missing = run("--stack-file", str(tmp_path / "missing.json"), "jobs", environ={})
    assert missing.code == 2
    assert "No local stack file" in one_line_error(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    unreadable = run("--stack-file", str(broken), "jobs", environ={})
    assert unreadable.code == 2
    assert "not readable JSON" in one_line_error(unreadable)


def test_without_any_api_url(run: Any) -> None:
    result = run("jobs", environ={})
    assert result.code == 2
    assert "No API URL" in one_line_error(result)


def test_wrong_key(run: Any) -> None:
    result = run("jobs", "--api-key", "wrong")
    assert result.code == 1
    assert "[unauthorized]" in one_line_error(result)


def test_usage_errors_exit_2(run: Any) -> None:
    assert run().code == 2
    assert run("upload").code == 2
    bad = run("upload", "x.wav", "--concurrency", "0")
    assert bad.code == 2
    assert "--concurrency: must be at least 1" in bad.err
    assert "usage: audiolift" in run("--help").out


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--api-url", "127.0.0.1:8000", "http:// or https://"),
        ("--api-url", "ftp://api.test", "http:// or https://"),
        ("--api-url", "http://[::1", "not a valid URL"),
        ("--api-key", "k\u00e9y", "API key"),
        ("--api-key", "a\nb", "API key"),
    ],
)
def test_a_malformed_api_url_or_key_exits_2_before_any_request(
    run: Any, cloud: FakeCloud, flag: str, value: str, says: str
) -> None:
    """What a mistyped or badly pasted URL or key gets: one line saying what is wrong,
    the configuration exit code, no request retried as if the network had failed."""
    result = run("jobs", flag, value)
    assert result.code == 2
    assert says in one_line_error(result)
    assert cloud.requests == []


@pytest.mark.timeout(20)  # "nan" and "inf" waited for ever
@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
def test_wait_timeout_must_be_a_positive_number_of_seconds(
    run: Any, cloud: FakeCloud, audio_file: Path, seconds: str
) -> None:
    """A negative or zero --timeout gave up at once after uploading the file (exit 4)."""
    result = run("upload", str(audio_file), "--wait", "--timeout", seconds)
    assert result.code == 2
    assert "--timeout" in result.err
    assert cloud.requests == []


def test_an_upload_aborted_for_its_sha256_is_not_offered_for_resuming(
    run: Any, cloud: FakeCloud, audio_file: Path
) -> None:
    """The SDK aborts an upload whose file does not have the declared SHA-256: the next
    run of the same file starts afresh without trying the cancelled job first."""
    wrong = run("upload", str(audio_file), "--sha256", "0" * 64)
    assert wrong.code == 1 and "[checksum_mismatch]" in wrong.err
    again = run("upload", str(audio_file))
    assert again.code == 0, again.err
    assert "Cannot resume" not in again.err and "Resumed" not in again.err
