"""Benchmark: reading and decoding a large WAV from a local file, through S3RangeReader
from a local SeaweedFS (which serves ranges from disk), and through Powertools'
streaming ``S3Object`` on the same object; plus the reader's peak RSS for a 1 GiB and a
4 GiB object, each in a fresh subprocess.

    .venv/bin/python bench/bench_reader.py                    # 1 GiB, and the RSS runs
    .venv/bin/python bench/bench_reader.py --size 256MiB --rss-sizes 256MiB
    .venv/bin/python bench/bench_reader.py --endpoint http://127.0.0.1:8333   # existing S3

Goals: reader >= 0.8x the local file; reader vs S3Object >= 1.5x; peak RSS
<= 200 MiB for 1 GiB and 4 GiB objects. If ``audiolift_processor.decode.analyze_stream``
exists, the full analysis is measured through each source too; otherwise only the block
decode with soundfile.

The local stack's SeaweedFS (``audiolift_devstack.seaweed``) is started on 127.0.0.1 on
free ports, with its data and logs in a temporary directory, and stopped at the end; the
generated files and the temporary directory are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
for _path in ("layers/core", "functions/processor", "devstack"):
    sys.path.insert(0, str(ROOT / _path))

from audiolift_devstack.clients import s3_client_for  # noqa: E402
from audiolift_devstack.seaweed import SeaweedFS  # noqa: E402
from audiolift_processor.s3reader import S3RangeReader  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
RATE = 48_000
CHANNELS = 2
BLOCK_FRAMES = 1 << 16
BUCKET = "bench-reader"


def parse_size(text: str) -> int:
    units = {"k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB, "": 1}
    text = text.strip().lower()
    number = text.rstrip("kmgib")
    return int(float(number) * units[text[len(number) :]])


def analysis_function() -> Callable[..., Any] | None:
    try:
        from audiolift_processor.decode import analyze_stream
    except ImportError:
        return None
    return analyze_stream


# --- the test file -------------------------------------------------------------------


def write_wav(path: Path, size: int) -> None:
    """A 16-bit stereo 48 kHz file of about ``size`` bytes: a few detuned partials under
    a slow envelope, plus noise (music-like, not a constant). Eight distinct int16 blocks
    are computed once and cycled, so writing is bound by the disk. RF64 when the data
    would not fit a plain WAV's 32-bit sizes."""
    frames = size // (2 * CHANNELS)
    container = "WAV" if size < 4 * GiB - 1024 else "RF64"
    rng = np.random.default_rng(1)
    block = 1 << 20
    t = np.arange(block) / RATE
    partials = [(220.0, 0.3), (277.2, 0.2), (329.6, 0.15), (440.0, 0.1)]
    tone = sum(amp * np.sin(2 * np.pi * freq * t) for freq, amp in partials)
    blocks = []
    for index in range(8):
        envelope = 0.5 + 0.4 * np.sin(np.pi * index / 8 + 2 * np.pi * t / 20)
        stereo = np.column_stack([tone * envelope, np.roll(tone, 37 + index) * envelope])
        stereo += rng.standard_normal((block, CHANNELS)) * 0.02
        blocks.append(np.round(stereo * 32767).clip(-32768, 32767).astype(np.int16))
    with sf.SoundFile(
        path, "w", samplerate=RATE, channels=CHANNELS, subtype="PCM_16", format=container
    ) as out:
        written = 0
        index = 0
        while written < frames:
            count = min(block, frames - written)
            out.write(blocks[index % len(blocks)][:count])
            written += count
            index += 1


# --- SeaweedFS --------------------------------------------------------------------------


@contextlib.contextmanager
def local_s3(workdir: Path) -> Iterator[str]:
    """The local stack's SeaweedFS (its data and logs under ``workdir``). Its credentials go
    to the environment, where the clients here and the RSS subprocesses find them."""
    with SeaweedFS(state_dir=workdir / "stack") as server:
        os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
        yield server.s3_endpoint


def s3_client(endpoint: str) -> Any:
    return s3_client_for(
        {
            "region": "us-east-1",
            "s3_endpoint": endpoint,
            "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
        },
        max_pool_connections=16,
    )


def upload(client: Any, path: Path, key: str) -> tuple[str, int]:
    from boto3.s3.transfer import TransferConfig

    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    client.upload_file(
        str(path),
        BUCKET,
        key,
        Config=TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=4),
    )
    head = client.head_object(Bucket=BUCKET, Key=key)
    return head["ETag"], int(head["ContentLength"])


# --- the work measured ------------------------------------------------------------------


def read_all(fileobj: IO[bytes] | io.BufferedIOBase) -> int:
    buffer = bytearray(1 * MiB)
    total = 0
    if hasattr(fileobj, "readinto"):
        while count := fileobj.readinto(buffer):
            total += count
    else:
        while data := fileobj.read(len(buffer)):
            total += len(data)
    return total


def decode_all(fileobj: IO[bytes] | io.BufferedIOBase, dtype: str = "int16") -> int:
    """Decode the file in blocks into reused arrays; returns the frames decoded.

    ``int16``: read the samples as int16 and scale them to float32 in numpy (what the
    analysis does: libsndfile's own int16->float conversion is several times slower and
    reads its input 8 KiB at a time, i.e. one Python callback per 8 KiB through any
    virtual file). ``float32``: let libsndfile convert."""
    mode = "r" if getattr(fileobj, "mode", None) is None else None
    with sf.SoundFile(fileobj, mode=mode) as audio:
        raw = np.empty((BLOCK_FRAMES, audio.channels), dtype=dtype)
        scaled = np.empty((BLOCK_FRAMES, audio.channels), dtype=np.float32)
        frames = 0
        while True:
            block = audio.read(BLOCK_FRAMES, dtype=dtype, out=raw)
            if dtype == "int16":
                np.multiply(block, np.float32(1 / 32768), out=scaled[: len(block)])
            frames += len(block)
            if len(block) < BLOCK_FRAMES:
                break
        if frames != audio.frames:
            raise RuntimeError(f"decoded {frames} of {audio.frames} frames")
    return frames


def analyse_all(fileobj: IO[bytes] | io.BufferedIOBase, size: int) -> Any:
    analyze = analysis_function()
    assert analyze is not None
    return analyze(fileobj, size=size)


@dataclass
class Source:
    name: str
    open: Callable[[], Any]


def sources(path: Path, client: Any, key: str, etag: str, size: int, args: Any) -> list[Source]:
    from aws_lambda_powertools.utilities.streaming import S3Object

    def reader(hashing: bool = True) -> S3RangeReader:
        return S3RangeReader(
            client,
            BUCKET,
            key,
            etag=etag,
            size=size,
            chunk_size=args.chunk_size,
            cache_chunks=args.cache_chunks,
            read_ahead=args.read_ahead,
            hash_while_reading=hashing,
        )

    return [
        Source("local file", lambda: open(path, "rb")),
        Source("S3RangeReader", reader),
        # The processor hashes what it reads (SHA-256 of the object); the peer does not.
        Source("S3RangeReader, no SHA-256", lambda: reader(hashing=False)),
        Source("Powertools S3Object", lambda: S3Object(BUCKET, key, boto3_client=client)),
    ]


def measure(source: Source, work: str, size: int) -> float:
    fileobj = source.open()
    try:
        started = time.perf_counter()
        if work == "read":
            assert read_all(fileobj) == size
        elif work == "decode":
            decode_all(fileobj)
        elif work == "decode-f32":
            decode_all(fileobj, "float32")
        else:
            analyse_all(fileobj, size)
        elapsed = time.perf_counter() - started
        if isinstance(fileobj, S3RangeReader):
            fileobj.raise_if_failed()
    finally:
        fileobj.close()
    return elapsed


# --- the RSS subprocess -----------------------------------------------------------------


def peak_rss_kib() -> int:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries the
    parent's high-water mark over fork + exec into ru_maxrss."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(args: argparse.Namespace) -> None:
    client = s3_client(args.endpoint)
    started = time.perf_counter()
    with S3RangeReader(
        client,
        BUCKET,
        args.key,
        etag=args.etag,
        size=args.size_bytes,
        chunk_size=args.chunk_size,
        cache_chunks=args.cache_chunks,
        read_ahead=args.read_ahead,
    ) as reader:
        if args.child == "decode":
            decode_all(reader)
        else:
            analyse_all(reader, args.size_bytes)
        reader.raise_if_failed()
        stats = reader.stats
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "peak_rss_mib": peak_rss_kib() / 1024,
                "seconds": elapsed,
                "gets": stats.gets,
                "buffers": stats.buffers_allocated,
            }
        )
    )


def rss_run(args: argparse.Namespace, endpoint: str, key: str, etag: str, size: int, work: str):
    command = [
        sys.executable,
        __file__,
        "--child",
        work,
        "--endpoint",
        endpoint,
        "--key",
        key,
        "--etag",
        etag,
        "--size-bytes",
        str(size),
        "--chunk-size",
        str(args.chunk_size),
        "--cache-chunks",
        str(args.cache_chunks),
        "--read-ahead",
        str(args.read_ahead),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"RSS child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 * GiB, help="WAV size (1GiB)")
    parser.add_argument(
        "--rss-sizes",
        default="1GiB,4GiB",
        help="object sizes for the peak-RSS subprocess runs ('' to skip)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per source; best kept")
    parser.add_argument("--analysis-repeat", type=int, default=1, help="runs of the analysis")
    parser.add_argument("--chunk-size", type=parse_size, default=8 * MiB)
    parser.add_argument("--cache-chunks", type=int, default=2)
    parser.add_argument("--read-ahead", type=int, default=2)
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting SeaweedFS")
    parser.add_argument("--workdir", type=Path, help="where the temp dir goes (default /tmp)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-s3object", action="store_true")
    parser.add_argument("--no-analysis", action="store_true", help="decode only")
    parser.add_argument(
        "--f32", action="store_true", help="also decode with libsndfile's float conversion"
    )
    # the RSS child
    parser.add_argument("--child", choices=["decode", "analysis"], help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--etag", help=argparse.SUPPRESS)
    parser.add_argument("--size-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Clean up (stop SeaweedFS, delete the files) on Ctrl-C and on kill, also when started
    # in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.child:
        child(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="audiolift-bench-reader-", dir=args.workdir))
    try:
        with contextlib.ExitStack() as stack:
            endpoint = args.endpoint or stack.enter_context(local_s3(workdir))
            run(args, endpoint, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, endpoint: str, workdir: Path) -> None:
    client = s3_client(endpoint)
    analysis = analysis_function() is not None and not args.no_analysis
    results: dict[str, Any] = {
        "size_bytes": args.size,
        "chunk_size": args.chunk_size,
        "cache_chunks": args.cache_chunks,
        "read_ahead": args.read_ahead,
        "analysis_available": analysis,
        "throughput_mb_s": {},
        "rss": {},
    }
    print(f"S3 endpoint {endpoint}; work dir {workdir}")

    path = workdir / "bench.wav"
    started = time.perf_counter()
    write_wav(path, args.size)
    size = path.stat().st_size
    print(f"wrote {size / GiB:.2f} GiB WAV in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    key = f"uploads/bench-{size}"
    etag, uploaded = upload(client, path, key)
    assert uploaded == size
    print(f"uploaded in {time.perf_counter() - started:.1f} s (ETag {etag})")

    works = [
        "read",
        "decode",
        *(["decode-f32"] if args.f32 else []),
        *(["analysis"] if analysis else []),
    ]
    table: dict[str, dict[str, float]] = {}
    for work in works:
        table[work] = {}
        for source in sources(path, client, key, etag, size, args):
            if source.name == "Powertools S3Object" and args.skip_s3object:
                continue
            repeat = args.analysis_repeat if work == "analysis" else args.repeat
            best = min(measure(source, work, size) for _ in range(repeat))
            table[work][source.name] = size / best / 1e6
            print(f"  {work:10s} {source.name:26s} {size / best / 1e6:8.0f} MB/s ({best:.2f} s)")
    results["throughput_mb_s"] = table

    print("\nratios (goal: reader/local >= 0.8, reader/S3Object >= 1.5)")
    for work, row in table.items():
        reader = row["S3RangeReader"]
        parts = [f"reader/local {reader / row['local file']:.2f}"]
        if "Powertools S3Object" in row:
            parts.append(f"reader/S3Object {reader / row['Powertools S3Object']:.2f}")
            unhashed = row["S3RangeReader, no SHA-256"] / row["Powertools S3Object"]
            parts.append(f"(without SHA-256 {unhashed:.2f})")
        print(f"  {work:10s} " + "  ".join(parts))
    path.unlink()

    rss_sizes = [parse_size(s) for s in args.rss_sizes.split(",") if s.strip()]
    if rss_sizes:
        print("\npeak RSS of a fresh process reading through S3RangeReader (goal <= 200 MiB)")
    for rss_size in rss_sizes:
        if rss_size == size:
            rss_key, rss_etag, rss_bytes = key, etag, size
        else:
            rss_path = workdir / "rss.wav"
            write_wav(rss_path, rss_size)
            rss_key = f"uploads/bench-rss-{rss_size}"
            rss_etag, rss_bytes = upload(client, rss_path, rss_key)
            rss_path.unlink()
        for work in ["decode"] + (["analysis"] if analysis else []):
            figures = rss_run(args, endpoint, rss_key, rss_etag, rss_bytes, work)
            label = f"{rss_bytes / GiB:.2f} GiB {work}"
            results["rss"][label] = figures
            print(
                f"  {label:22s} peak RSS {figures['peak_rss_mib']:6.1f} MiB, "
                f"{rss_bytes / figures['seconds'] / 1e6:6.0f} MB/s, {figures['gets']} GETs, "
                f"{figures['buffers']} buffers"
            )
        if rss_key != key:
            client.delete_object(Bucket=BUCKET, Key=rss_key)
    client.delete_object(Bucket=BUCKET, Key=key)

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
