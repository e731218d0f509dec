"""``audiolift``: the command line over the SDK.

Exit codes: 0 success, 1 error, 2 usage or configuration, 3 the job failed or was
cancelled, 4 waiting timed out, 65 the file is not audio we analyse (sysexits' EX_DATAERR;
nothing was uploaded), 130 interrupted. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ._client import Client
from ._errors import (
    AudioliftError,
    ChecksumMismatchError,
    ConfigurationError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    UnsupportedFormatError,
    WaitTimeoutError,
)
from ._models import Job, Limits, UploadProgress
from ._state import UploadState, pending, state_dir
from ._upload import FileSnapshot, audio_format
from ._version import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_JOB_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_BAD_INPUT = 65
EXIT_INTERRUPTED = 130

# Where `make dev` writes the local stack's URL and key.
DEFAULT_STACK_FILE = ".state/stack.json"


@dataclass(frozen=True)
class Connection:
    api_url: str
    api_key: str | None


ClientFactory = Callable[[Connection], Client]


def _default_factory(connection: Connection) -> Client:
    return Client(connection.api_url, connection.api_key)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (as argparse does)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    connection = _Parser(add_help=False)
    group = connection.add_argument_group("connection")
    # SUPPRESS: an option given before the command is not overwritten by the default.
    group.add_argument("--api-url", default=argparse.SUPPRESS, help="the API's base URL")
    group.add_argument("--api-key", default=argparse.SUPPRESS, help="an API key")
    group.add_argument(
        "--stack-file",
        default=argparse.SUPPRESS,
        help=f"the local stack's JSON file (default: {DEFAULT_STACK_FILE} when present)",
    )
    parser = _Parser(
        prog="audiolift",
        description="Upload audio to audiolift and get its analysis. The API comes from "
        "--api-url/--api-key, AUDIOLIFT_API_URL/AUDIOLIFT_API_KEY, or the local stack's "
        f"{DEFAULT_STACK_FILE}.",
        parents=[connection],
    )
    parser.add_argument("--version", action="version", version=f"audiolift {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=text, description=text, parents=[connection]
        )
        return sub

    upload = command("upload", "upload a file (in parallel parts, resumable)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--wait", action="store_true", help="wait for the analysis and show it")
    upload.add_argument("--json", action="store_true", help="print JSON (the result with --wait)")
    upload.add_argument("--concurrency", type=_positive, default=8, help="parallel parts (8)")
    upload.add_argument("--content-type", help="the file's media type (default: by extension)")
    upload.add_argument(
        "--sha256", metavar="HEX", type=_sha256,
        help="the SHA-256 the file must have (it is always computed and checked anyway)",
    )  # fmt: skip
    upload.add_argument(
        "--timeout", type=_seconds, default=None, help="seconds --wait waits (default: until done)"
    )
    resume = upload.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", dest="resume", action="store_true", default=None,
        help="resume an unfinished upload of this file without asking",
    )  # fmt: skip
    resume.add_argument(
        "--no-resume", dest="resume", action="store_false",
        help="start a new upload even if an unfinished one exists",
    )  # fmt: skip

    status = command("status", "show a job")
    status.add_argument("job_id", metavar="JOB")
    status.add_argument("--json", action="store_true")

    jobs = command("jobs", "list your jobs, newest first")
    jobs.add_argument("--status", help="only jobs in this state")
    jobs.add_argument("--limit", type=_positive, default=20)
    jobs.add_argument("--json", action="store_true")

    result = command("result", "show a job's analysis")
    result.add_argument("job_id", metavar="JOB")
    result.add_argument("--json", action="store_true", help="print the exact document")

    cancel = command("cancel", "cancel an unfinished job")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.add_argument("--json", action="store_true")

    limits = command(
        "limits", "what a file may be: size, parts, formats and how large each may be, cost"
    )
    limits.add_argument("--json", action="store_true", help="print the exact document")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text.strip()):
        raise argparse.ArgumentTypeError("must be a SHA-256: 64 hex digits")
    return text.strip().lower()


def resolve_connection(args: argparse.Namespace, env: Mapping[str, str]) -> Connection:
    """Flags, then the environment, then the local stack's file."""
    url = getattr(args, "api_url", None) or env.get("AUDIOLIFT_API_URL", "").strip() or None
    key = getattr(args, "api_key", None) or env.get("AUDIOLIFT_API_KEY", "").strip() or None
    stack_file = getattr(args, "stack_file", None)
    if stack_file is None and (url is None or key is None) and Path(DEFAULT_STACK_FILE).exists():
        stack_file = DEFAULT_STACK_FILE
    if stack_file is not None and (url is None or key is None):
        stack_url, stack_key = read_stack_file(stack_file)
        url = url or stack_url
        key = key or stack_key
    if not url:
        raise ConfigurationError(
            "No API URL: pass --api-url, set AUDIOLIFT_API_URL, or start the local stack "
            f"(it writes {DEFAULT_STACK_FILE})."
        )
    return Connection(url, key)


def read_stack_file(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(API URL, API key or None) from the local stack's JSON file."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"No local stack file at {path} (start the stack with `make dev`)."
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"The stack file {path} is not readable JSON: {error}") from None
    url = document.get("api_url") if isinstance(document, dict) else None
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"The stack file {path} has no api_url.")
    key = document.get("api_key")
    return url, key if isinstance(key, str) and key else None


class Cli:
    def __init__(
        self,
        args: argparse.Namespace,
        client: Client,
        connection: Connection,
        *,
        out: IO[str],
        err: IO[str],
        stdin: IO[str],
        env: Mapping[str, str],
    ):
        self.args = args
        self.client = client
        self.connection = connection
        self.out = _console(out)
        self.err = _console(err)
        self.raw_out = out
        self.stdin = stdin
        self.env = env

    def print_json(self, document: Any) -> None:
        self.raw_out.write(json.dumps(document, indent=2, sort_keys=False) + "\n")

    @property
    def bars(self) -> bool:
        return self.err.is_terminal

    # --- commands --------------------------------------------------------------------

    def upload(self) -> int:
        path: Path = self.args.file
        snapshot = FileSnapshot.take(path)
        audio_format(snapshot)  # refused at once, before any request or progress bar
        state = UploadState(state_dir(self.env))
        earlier = state.find(
            snapshot.path, snapshot.size, snapshot.mtime_ns, self.connection.api_url
        )
        job: Job | None = None
        with self._upload_bar(snapshot.path.name, snapshot.size) as on_progress:
            if earlier is not None and self._should_resume(earlier.job_id):
                try:
                    job = self.client.resume(
                        earlier.job_id,
                        snapshot.path,
                        concurrency=self.args.concurrency,
                        on_progress=on_progress,
                    )
                    self.err.print(f"Resumed the upload of job {earlier.job_id}.")
                except (NotFoundError, ConflictError) as error:
                    self.err.print(f"Cannot resume job {earlier.job_id} ({error}); starting anew.")
            if job is None:

                def remember(created: Job) -> None:
                    state.remember(
                        pending(
                            created.job_id,
                            self.connection.api_url,
                            snapshot.path,
                            snapshot.size,
                            snapshot.mtime_ns,
                        )
                    )

                try:
                    job = self.client.upload(
                        snapshot.path,
                        concurrency=self.args.concurrency,
                        on_progress=on_progress,
                        content_type=self.args.content_type,
                        sha256=self.args.sha256,
                        on_created=remember,
                    )
                except ChecksumMismatchError:
                    # The SDK aborted it: nothing is left to resume.
                    state.forget(snapshot.path, snapshot.size, snapshot.mtime_ns)
                    raise
        state.forget(snapshot.path, snapshot.size, snapshot.mtime_ns)
        if not self.args.wait:
            if self.args.json:
                self.print_json(job.raw)
            else:
                self.out.print(f"Uploaded {snapshot.path.name} as job {job.job_id} ({job.status}).")
            return EXIT_OK
        job = self._wait(job)
        document = job.result()
        if self.args.json:
            self.print_json(document)
        else:
            self.out.print(f"Job {job.job_id}: {job.filename} analysed.")
            self._print_result(document)
        return EXIT_OK

    def _should_resume(self, job_id: str) -> bool:
        if self.args.resume is not None:
            return bool(self.args.resume)
        if not self.stdin.isatty():
            return True  # same path, size and mtime: resuming is what a rerun wants
        self.err.print(
            f"An unfinished upload of this file exists (job {job_id}). Resume it? [Y/n] ", end=""
        )
        answer = self.stdin.readline().strip().lower()
        return answer in ("", "y", "yes")

    @contextmanager
    def _upload_bar(
        self, name: str, size: int
    ) -> Iterator[Callable[[UploadProgress], None] | None]:
        if not self.bars:
            yield None
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        ) as bars:
            task = bars.add_task(f"upload {name}", total=size)

            def update(progress: UploadProgress) -> None:
                bars.update(task, completed=progress.uploaded_bytes)

            yield update

    def _wait(self, job: Job) -> Job:
        if not self.bars:
            return job.wait(timeout=self.args.timeout)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.err,
        ) as bars:
            task = bars.add_task("processing", total=100)

            def update(current: Job) -> None:
                bars.update(task, completed=current.progress, description=f"{current.status}")

            return job.wait(timeout=self.args.timeout, on_progress=update)

    def status(self) -> int:
        job = self.client.get_job(self.args.job_id)
        if self.args.json:
            self.print_json(job.raw)
            return EXIT_OK
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for label, value in job_rows(job):
            table.add_row(label, value)
        self.out.print(table)
        return EXIT_OK

    def jobs(self) -> int:
        listed = list(self.client.jobs(status=self.args.status, limit=self.args.limit))
        if self.args.json:
            self.print_json([job.raw for job in listed])
            return EXIT_OK
        if not listed:
            self.out.print("No jobs.")
            return EXIT_OK
        table = Table("job", "status", "progress", "file", "size", "created")
        for column in (table.columns[2], table.columns[4]):
            column.justify = "right"
        for job in listed:
            table.add_row(
                job.job_id,
                job.status,
                f"{job.progress}%",
                job.filename,
                human_bytes(job.size),
                job.created_at,
            )
        self.out.print(table)
        return EXIT_OK

    def result(self) -> int:
        document = self.client.result(self.args.job_id)
        if self.args.json:
            self.print_json(document)
        else:
            self._print_result(document)
        return EXIT_OK

    def cancel(self) -> int:
        job = self.client.cancel(self.args.job_id)
        if self.args.json:
            self.print_json(job.raw)
        else:
            self.out.print(f"Job {job.job_id} is {job.status}.")
        return EXIT_OK

    def limits(self) -> int:
        limits = self.client.limits()
        if self.args.json:
            self.print_json(limits.raw)
            return EXIT_OK
        for table in limits_tables(limits):
            self.out.print(table)
        return EXIT_OK

    def _print_result(self, document: Any) -> None:
        for table in result_tables(document):
            self.out.print(table)


def _console(stream: IO[str]) -> Console:
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        # Piped or captured: wide enough that tables keep job ids and numbers whole.
        console = Console(file=stream, highlight=False, width=200)
    return console


# --- rendering -----------------------------------------------------------------------


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def duration_text(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    return f"{hours}:{minutes:02d}:{secs + fraction:06.3f}"


def number(value: Any, unit: str = "", digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def job_rows(job: Job) -> list[tuple[str, str]]:
    rows = [
        ("job", job.job_id),
        ("status", job.status),
        ("progress", f"{job.progress}%"),
        ("file", job.filename),
        ("size", human_bytes(job.size)),
        ("content type", job.content_type),
        ("created", job.created_at),
        ("updated", job.updated_at),
    ]
    if job.sha256:
        rows.append(("sha256 declared", job.sha256))
    if job.verified_sha256:
        rows.append(("sha256 verified", job.verified_sha256))
    if job.error:
        rows.append(("error", f"{job.error.get('code')}: {job.error.get('message')}"))
    for key, value in (job.summary or {}).items():
        rows.append((key.replace("_", " "), "-" if value is None else str(value)))
    return rows


def _bytes_or_dash(count: int | None) -> str:
    return "-" if count is None else human_bytes(count)


def _usd(amount: float | None) -> str:
    return "-" if amount is None else f"${amount:.4f}"


def limits_tables(limits: Limits) -> list[Table]:
    uploads = Table(title="uploads", show_header=False, title_justify="left")
    uploads.add_column(style="bold")
    uploads.add_column(justify="right")
    uploads.add_row("largest upload", _bytes_or_dash(limits.max_upload_bytes))
    uploads.add_row("part size", f"{_bytes_or_dash(limits.preferred_part_bytes)} (preferred)")
    uploads.add_row(
        "part size range",
        f"{_bytes_or_dash(limits.min_part_bytes)} - {_bytes_or_dash(limits.max_part_bytes)}",
    )
    uploads.add_row("parts per upload", number(limits.max_parts))
    # Not a limit on a file: a longer analysis is checkpointed and continued.
    uploads.add_row("one analysis run", number(limits.processor_timeout_seconds, "s", 0))
    tables = [uploads]

    formats = Table("format", "extensions", "analysis speed", "analysed in one run",
                    "per GiB", title="formats", title_justify="left")  # fmt: skip
    for column in formats.columns[2:]:
        column.justify = "right"
    for entry in limits.formats:
        formats.add_row(
            entry.label,
            " ".join(entry.extensions),
            number(entry.analysis_mib_per_second, "MiB/s"),
            _bytes_or_dash(entry.max_analysable_bytes),
            _usd(entry.usd_per_gib_analysed),
        )
    tables.append(formats)

    if limits.cost is not None:
        cost = Table(title="cost (Lambda compute)", show_header=False, title_justify="left")
        cost.add_column(style="bold")
        cost.add_column(justify="right")
        cost.add_row("per GiB analysed", _usd(limits.cost.usd_per_gib_analysed))
        price = limits.cost.price_per_gb_second
        cost.add_row("price per GB-second", "-" if price is None else f"${price:.10f}".rstrip("0"))
        cost.add_row("price as of", limits.cost.price_date or "-")
        cost.add_row("memory", number(limits.cost.memory_mb, "MB"))
        cost.add_row("architecture", limits.cost.architecture or "-")
        tables.append(cost)
    return tables


def result_tables(document: Any) -> list[Table]:
    if not isinstance(document, dict):
        table = Table(show_header=False)
        table.add_row(json.dumps(document))
        return [table]
    tables = []
    source = document.get("source")
    if isinstance(source, dict) and source:
        table = Table(title="file", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in source.items():
            if isinstance(value, dict | list):
                continue
            shown = human_bytes(value) if key == "size" and isinstance(value, int) else value
            table.add_row(key.replace("_", " "), "-" if shown is None else str(shown))
        tables.append(table)
    fmt = document.get("format") or {}
    overview = Table(title="format", show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    overview.add_row("container", str(fmt.get("container") or fmt.get("subtype") or "-"))
    overview.add_row("sample rate", number(fmt.get("sample_rate"), "Hz"))
    overview.add_row("channels", number(fmt.get("channels")))
    overview.add_row("duration", duration_text(fmt.get("duration_seconds")))
    overview.add_row("peak", number(document.get("peak_dbfs"), "dBFS", 2))
    tables.append(overview)

    loudness = document.get("loudness") or {}
    table = Table(title="loudness", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("integrated", number(loudness.get("integrated_lufs"), "LUFS"))
    table.add_row("loudness range", number(loudness.get("loudness_range_lu"), "LU"))
    table.add_row("true peak", number(loudness.get("true_peak_dbtp"), "dBTP"))
    table.add_row("momentary max", number(loudness.get("momentary_max_lufs"), "LUFS"))
    table.add_row("short-term max", number(loudness.get("short_term_max_lufs"), "LUFS"))
    tables.append(table)

    channels = document.get("channels") or []
    if channels:
        table = Table(title="channels", title_justify="left")
        for heading in ("ch", "peak dBFS", "RMS dBFS", "true peak dBTP", "DC offset", "clipped"):
            table.add_column(heading, justify="right")
        for channel in channels:
            if not isinstance(channel, dict):
                continue
            table.add_row(
                str(channel.get("index", "?")),
                number(channel.get("peak_dbfs"), digits=2),
                number(channel.get("rms_dbfs"), digits=2),
                number(channel.get("true_peak_dbtp"), digits=2),
                number(channel.get("dc_offset"), digits=6),
                number(channel.get("clipped_samples")),
            )
        tables.append(table)

    silence = document.get("silence") or {}
    if silence:
        table = Table(title="silence", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        ratio = silence.get("ratio")
        table.add_row("silent", f"{ratio * 100:.1f} %" if isinstance(ratio, int | float) else "-")
        table.add_row("silent time", duration_text(silence.get("silent_seconds")))
        table.add_row("longest silence", duration_text(silence.get("longest_seconds")))
        table.add_row("threshold", number(silence.get("threshold_dbfs"), "dBFS"))
        tables.append(table)
    return tables


# --- entry point ---------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the CLI; returns the exit code. The keyword arguments are for tests and
    embedding: a client factory (e.g. with fake transports), streams and environment."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return int(exit_.code or 0)
    try:
        connection = resolve_connection(args, env)
        with (client_factory or _default_factory)(connection) as client:
            cli = Cli(args, client, connection, out=out, err=err, stdin=stdin or sys.stdin, env=env)
            handler: Callable[[], int] = getattr(cli, args.command)
            return handler()
    except KeyboardInterrupt:
        _fail(err, "interrupted (run the same upload again to resume it)")
        return EXIT_INTERRUPTED
    except ConfigurationError as error:
        _fail(err, str(error))
        return EXIT_USAGE
    except JobFailedError as error:
        _fail(err, f"{error} [{error.code}]")
        return EXIT_JOB_FAILED
    except WaitTimeoutError as error:
        _fail(err, str(error))
        return EXIT_TIMEOUT
    except UnsupportedFormatError as error:
        _fail(err, f"{error} [{error.code}]")
        return EXIT_BAD_INPUT
    except AudioliftError as error:
        suffix = f" (job {error.job_id})" if error.job_id else ""
        _fail(err, f"{error}{suffix} [{error.code}]")
        return EXIT_ERROR
    except OSError as error:  # the file: missing, unreadable
        _fail(err, f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
        return EXIT_ERROR


def _fail(err: IO[str], message: str) -> None:
    err.write("audiolift: error: " + " ".join(message.split()) + "\n")
    err.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
