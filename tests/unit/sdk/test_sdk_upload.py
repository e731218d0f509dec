"""The SDK's uploads against the in-memory fake API + S3 (conftest.FakeCloud)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import google_crc32c
import httpx
import pytest
from audiolift import (
    ChecksumMismatchError,
    Client,
    ConflictError,
    FileChangedError,
    RateLimitError,
    RetryConfig,
    ServerError,
    TransportError,
    UnsupportedFormatError,
    UploadError,
    UploadProgress,
)
from audiolift._http import Stopped
from audiolift._upload import HashedPrefix, HeadStart, OrderedHasher, PartUrls, SignedUrl
from sdk_fakes import (
    PART_SIZE,
    FakeCloud,
    answers,
    corrupts_body,
    error,
    is_api,
    is_part_put,
    raises,
    s3_error,
    wav_bytes,
)

PARTS = 11  # audio_file: 10.5 parts


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def test_parallel_upload_reassembles_the_file(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.first_batch = 3  # the rest must be signed just in time
    reports: list[UploadProgress] = []

    job = client.upload(audio_file, concurrency=4, on_progress=reports.append)

    stored = cloud.jobs[job.job_id]
    assert job.status == "uploaded"
    assert stored.object_bytes == audio_file.read_bytes()
    assert stored.part_count == PARTS
    assert sorted(cloud.part_puts) == list(range(1, PARTS + 1))  # each part once
    assert len(cloud.put_threads) > 1  # really in parallel
    # The completion names every part with the ETag S3 gave it.
    assert stored.completed_with == [
        {"part_number": n, "etag": stored.parts[n][0]} for n in range(1, PARTS + 1)
    ]
    # The upload was declared CRC32C; every part was signed once, for its own CRC32C,
    # and sent with it (the URLs made at creation carry no checksum and go unused).
    assert stored.checksum_algorithm == "CRC32C" and job.checksum_algorithm == "CRC32C"
    signed = [n for batch in cloud.sign_calls for n in batch]
    assert sorted(signed) == list(range(1, PARTS + 1))
    data = audio_file.read_bytes()
    for n in range(1, PARTS + 1):
        part = data[(n - 1) * PART_SIZE : n * PART_SIZE]
        assert cloud.signed_checksums[n] == ("x-amz-checksum-crc32c", crc32c_b64(part))
    for put in [r for r in cloud.requests if is_part_put()(r)]:
        header, value = cloud.signed_checksums[int(put.url.params["partNumber"])]
        assert put.headers[header] == value
        assert "content-md5" not in put.headers  # no MD5 computed for it
    # The file's SHA-256, computed while the parts were read, and its CRC32C, combined
    # from the parts', declared at completion.
    assert stored.completed_sha256 == hashlib.sha256(data).hexdigest()
    assert stored.completed_crc32c == crc32c_b64(data)
    # Progress: in order, ending at the whole file.
    sent = [r.uploaded_bytes for r in reports]
    assert sent == sorted(sent)
    assert reports[-1].uploaded_bytes == audio_file.stat().st_size
    assert reports[-1].parts_done == PARTS
    assert reports[-1].fraction == 1.0


def test_parts_streamed_in_small_chunks_reassemble(
    cloud: FakeCloud, retry: RetryConfig, audio_file: Path
) -> None:
    """Chunks that do not divide the part size, and a failed attempt in mid-part."""
    cloud.inject(is_part_put(4), raises(httpx.RemoteProtocolError, "dropped"))
    reports: list[UploadProgress] = []
    with cloud.client(retry, upload_chunk_bytes=10_000) as client:
        job = client.upload(audio_file, concurrency=3, on_progress=reports.append)
    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    assert reports[-1].uploaded_bytes == audio_file.stat().st_size
    assert len(reports) > 7 * PARTS  # progress moved chunk by chunk


def test_upload_sends_the_file_name_size_and_a_known_sha256(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    digest = hashlib.sha256(audio_file.read_bytes()).hexdigest()
    job = client.upload(audio_file, sha256=digest.upper(), content_type="audio/x-wav")
    stored = cloud.jobs[job.job_id]
    assert stored.sha256 == digest  # declared at creation
    assert stored.completed_sha256 == digest  # and at completion
    assert job.sha256 == digest
    assert (stored.filename, stored.size, stored.content_type) == (
        "take.wav",
        audio_file.stat().st_size,
        "audio/x-wav",
    )


def test_a_file_of_one_part(client: Client, cloud: FakeCloud, tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    path.write_bytes(wav_bytes(200))
    job = client.upload(path)
    assert cloud.jobs[job.job_id].object_bytes == path.read_bytes()


def test_retries_after_server_errors_and_retry_after(
    client: Client, cloud: FakeCloud, audio_file: Path, sleeps: list[float]
) -> None:
    cloud.inject(is_part_put(3), answers(lambda: s3_error(500, "InternalError", "oops")), times=2)
    cloud.inject(
        is_api("POST", "/v1/uploads"),
        answers(lambda: error(503, "unavailable", "busy", **{"Retry-After": "7"})),
    )
    cloud.inject(
        is_api("POST", "/v1/uploads/.*/complete"),
        answers(lambda: error(429, "rate_limited", "slow down", **{"Retry-After": "2"})),
    )

    job = client.upload(audio_file, concurrency=2)

    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    part3_puts = [r for r in cloud.requests if is_part_put(3)(r)]
    assert len(part3_puts) == 3  # two 500s, then the success
    assert 7.0 in sleeps and 2.0 in sleeps  # Retry-After honoured
    assert 0.1 in sleeps and 0.2 in sleeps  # backoff doubling (jitter at its ceiling)


def test_retries_after_dropped_connections_and_timeouts(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(2), raises(httpx.RemoteProtocolError, "peer closed connection"))
    cloud.inject(is_part_put(5), raises(httpx.ConnectError, "connection refused"), times=2)
    cloud.inject(is_part_put(7), raises(httpx.WriteTimeout, "timed out"))
    cloud.inject(is_api("GET", "/v1/jobs/.*"), raises(httpx.ReadError, "reset"))

    job = client.upload(audio_file, concurrency=3)

    assert job.status == "uploaded"
    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()


def test_progress_takes_back_the_bytes_of_a_failed_attempt(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(1), raises(httpx.RemoteProtocolError, "dropped"))
    reports: list[UploadProgress] = []
    client.upload(audio_file, concurrency=1, on_progress=reports.append)
    assert reports[-1].uploaded_bytes == audio_file.stat().st_size
    assert max(r.uploaded_bytes for r in reports) == audio_file.stat().st_size


def test_gives_up_after_max_attempts_and_names_the_job(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(4), raises(httpx.ConnectError, "refused"), times=100)
    with pytest.raises(TransportError) as caught:
        client.upload(audio_file, concurrency=2)
    assert caught.value.job_id in cloud.jobs
    assert len([r for r in cloud.requests if is_part_put(4)(r)]) == 4  # max_attempts
    assert "partNumber" not in str(caught.value)  # no presigned query string in messages
    # Nothing was completed: the upload stays open, to resume.
    assert cloud.jobs[caught.value.job_id].status == "awaiting_upload"


def test_s3_refusal_that_retrying_cannot_fix_stops_the_upload(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(2), answers(lambda: s3_error(400, "InvalidArgument", "bad part")))
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    assert caught.value.code == "invalid_argument"
    assert caught.value.status == 400
    assert "bad part" in caught.value.message
    assert 11 not in cloud.part_puts  # the rest was not sent after the failure


def test_expired_urls_are_resigned_and_retried(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    # Every URL signed so far expires (server-side) as the first PUT arrives.
    cloud.on_request(is_part_put(), cloud.expire_all_urls)
    job = client.upload(audio_file, concurrency=2)

    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    puts = [r for r in cloud.requests if is_part_put()(r)]
    signed = [n for batch in cloud.sign_calls for n in batch]
    resigned = len(signed) - PARTS
    assert resigned >= 1  # at least the first PUT's part: 403 "Request has expired"
    assert len(puts) == PARTS + resigned  # each refusal: one re-sign, one PUT more
    assert cloud.jobs[job.job_id].completed_sha256 == (
        hashlib.sha256(audio_file.read_bytes()).hexdigest()
    )


def test_signature_mismatch_is_resigned(client: Client, cloud: FakeCloud, audio_file: Path) -> None:
    cloud.inject(
        is_part_put(6),
        answers(lambda: s3_error(403, "SignatureDoesNotMatch", "The signature does not match")),
    )
    job = client.upload(audio_file)
    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    assert [6] in cloud.sign_calls


def test_a_url_refused_again_and_again_stops_after_a_few_resigns(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(
        is_part_put(3), answers(lambda: s3_error(403, "AccessDenied", "Access Denied")), times=99
    )
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    assert caught.value.code == "access_denied"
    assert sum(3 in batch for batch in cloud.sign_calls) == 1 + 3  # signed, re-signed 3 times
    # (Part 4, hashed meanwhile, may be signed ahead between them.)
    assert [batch for batch in cloud.sign_calls if 3 in batch][-3:] == [[3], [3], [3]]


def test_urls_close_to_expiry_are_signed_again_before_use(
    client: Client, audio_file: Path, retry: object
) -> None:
    cloud = FakeCloud(ttl=30)  # under the SDK's 60 s margin: the first batch is stale at once
    with Client(
        "https://api.audiolift.test",
        "test-key-alice",
        transport=cloud.api_transport(),
        s3_transport=cloud.s3_transport(),
    ) as fresh_client:
        job = fresh_client.upload(audio_file, concurrency=1)
    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    puts = [r for r in cloud.requests if is_part_put()(r)]
    assert len(puts) == PARTS  # no PUT was wasted on a stale URL


def test_resume_sends_only_the_missing_parts(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(7), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    job_id = caught.value.job_id
    assert job_id is not None
    assert sorted(cloud.jobs[job_id].parts) == [1, 2, 3, 4, 5, 6]
    # A part S3 holds with the wrong size (e.g. cut short) is sent again.
    etag, data = cloud.jobs[job_id].parts[2]
    cloud.jobs[job_id].parts[2] = (etag, data[:100])
    cloud.part_puts.clear()
    reports: list[UploadProgress] = []

    job = client.resume(job_id, audio_file, concurrency=3, on_progress=reports.append)

    assert sorted(cloud.part_puts) == [2, 7, 8, 9, 10, 11]
    assert job.status == "uploaded"
    assert cloud.jobs[job_id].object_bytes == audio_file.read_bytes()
    # The kept parts were hashed from the local file: the digest covers the whole file.
    assert cloud.jobs[job_id].completed_sha256 == (
        hashlib.sha256(audio_file.read_bytes()).hexdigest()
    )
    assert reports[0].resumed_bytes == 5 * PART_SIZE
    assert reports[-1].uploaded_bytes == audio_file.stat().st_size


def test_resume_of_an_upload_already_completed_returns_the_job(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    job = client.upload(audio_file)
    cloud.part_puts.clear()
    assert client.resume(job.job_id, audio_file).status == "uploaded"
    assert cloud.part_puts == []


def test_resume_refuses_a_different_file(
    client: Client, cloud: FakeCloud, audio_file: Path, tmp_path: Path
) -> None:
    cloud.inject(is_part_put(2), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    other = tmp_path / "other.wav"
    other.write_bytes(wav_bytes(1000))
    with pytest.raises(FileChangedError, match="not the same file"):
        client.resume(str(caught.value.job_id), other)


def test_file_growing_during_the_upload_stops_it(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    def grow(progress: UploadProgress) -> None:
        if progress.parts_done == 3:
            with open(audio_file, "ab") as handle:
                handle.write(b"more")

    with pytest.raises(FileChangedError) as caught:
        client.upload(audio_file, concurrency=1, on_progress=grow)
    assert "changed during the upload" in caught.value.message
    job = cloud.jobs[str(caught.value.job_id)]
    assert job.object_bytes is None  # never completed
    assert job.status == "cancelled"  # and aborted: its parts are of another file
    assert len(job.parts) < PARTS


def test_file_rewritten_in_place_during_the_upload_stops_it(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    """Same size, new modification time: caught before the next part or before complete."""

    def touch(progress: UploadProgress) -> None:
        if progress.parts_done == PARTS:  # after the last part: only complete is left
            stat = audio_file.stat()
            os.utime(audio_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    with pytest.raises(FileChangedError, match="modified"):
        client.upload(audio_file, concurrency=2, on_progress=touch)
    assert not cloud.api_requests("POST", "/v1/uploads/.*/complete")


def test_an_upload_of_unknown_size_cannot_be_resumed(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    stored = cloud.add_job(status="awaiting_upload", size=0, part_size=0, part_count=0)
    with pytest.raises(ConflictError) as caught:
        client.resume(stored.job_id, audio_file)
    assert caught.value.code == "not_resumable"


def test_resume_sends_again_a_part_s3_holds_with_other_bytes(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(5), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    job_id = str(caught.value.job_id)
    # Part 3 as S3 holds it: the right size, other bytes (its ETag is their MD5).
    other = bytes(PART_SIZE)
    cloud.jobs[job_id].parts[3] = ('"' + hashlib.md5(other).hexdigest() + '"', other)
    cloud.part_puts.clear()
    reports: list[UploadProgress] = []

    client.resume(job_id, audio_file, concurrency=2, on_progress=reports.append)

    assert sorted(cloud.part_puts) == [3, 5, 6, 7, 8, 9, 10, 11]
    assert cloud.jobs[job_id].object_bytes == audio_file.read_bytes()
    assert reports[-1].uploaded_bytes == audio_file.stat().st_size
    assert reports[-1].parts_done == PARTS


def test_a_part_changed_on_the_way_is_refused_by_s3_and_sent_again(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(4), corrupts_body(cloud))

    job = client.upload(audio_file, concurrency=3)

    assert cloud.bad_digests == [4]  # S3's own CRC32C check refused it
    assert cloud.jobs[job.job_id].object_bytes == audio_file.read_bytes()
    assert len([r for r in cloud.requests if is_part_put(4)(r)]) == 2


def test_a_part_changed_on_the_way_every_time_stops_with_a_clear_error(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(is_part_put(4), corrupts_body(cloud), times=99)
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=2)
    assert caught.value.code == "bad_digest"
    assert "checksum mismatch" in caught.value.message and "part 4" in caught.value.message
    assert cloud.bad_digests == [4, 4, 4]  # the first try and two resends, then no more
    assert cloud.jobs[str(caught.value.job_id)].object_bytes is None  # never completed


def test_a_file_rewritten_in_place_keeping_size_and_mtime_is_caught(
    client: Client, cloud: FakeCloud, tmp_path: Path
) -> None:
    """The bytes read for the PUT are not those hashed: S3 refuses them (BadDigest), and
    reading the part again shows the file changed. (Four parts: when the last one is
    sent, hashing is over, so nothing else sees the edit first.)"""
    path = tmp_path / "take.wav"
    path.write_bytes(wav_bytes(4 * PART_SIZE))

    def rewrite(request: httpx.Request) -> httpx.Response:
        stat = path.stat()
        with open(path, "r+b") as handle:
            handle.seek(3 * PART_SIZE + 10)
            handle.write(b"edited")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return s3_error(400, "BadDigest", "The CRC32C you specified did not match.")

    cloud.inject(is_part_put(4), rewrite)
    with pytest.raises(FileChangedError, match="part 4 reads differently"):
        client.upload(path, concurrency=1)


def test_a_declared_sha256_the_file_does_not_have_aborts_before_completion(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    with pytest.raises(ChecksumMismatchError) as caught:
        client.upload(audio_file, sha256="0" * 64)
    assert caught.value.code == "checksum_mismatch"
    job = cloud.jobs[str(caught.value.job_id)]
    assert not cloud.api_requests("POST", "/v1/uploads/.*/complete")
    assert job.status == "cancelled"  # aborted: the parts are not of the declared file
    with pytest.raises(ValueError, match="64 hex"):
        client.upload(audio_file, sha256="not-a-digest")


def test_ordered_hasher_hashes_chunks_read_in_any_order_in_bounded_memory() -> None:
    data = hashlib.shake_256(b"ordered").digest(64 * 1000 + 17)
    chunk = 1000
    hasher = OrderedHasher(len(data), max_buffered=3 * chunk)
    stop = threading.Event()
    reads: list[tuple[int, int]] = []

    def read(length: int, offset: int) -> bytes:
        reads.append((length, offset))
        return data[offset : offset + length]

    hasher.start(read, stop)
    # Eight readers take every eighth chunk, as the hashing workers do; none ever waits.
    offsets = list(range(0, len(data), chunk))

    def reader(first: int) -> None:
        for offset in offsets[first::8]:
            hasher.feed(offset, data[offset : offset + chunk])

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.peak_buffered <= 3 * chunk
    # What did not fit in the buffer was read again from the file, once.
    assert hasher.reread_bytes == sum(length for length, _ in reads)
    assert len({offset for _, offset in reads}) == len(reads)


def test_ordered_hasher_stops_when_the_upload_stops() -> None:
    hasher = OrderedHasher(10_000, max_buffered=100)
    stop = threading.Event()
    hasher.start(lambda length, offset: bytes(length), stop)
    hasher.feed(1000, bytes(100))  # ahead of the frontier: waits for bytes 0..999
    stop.set()
    hasher.join()
    with pytest.raises(RuntimeError, match="hashed 0 of 10000 bytes"):
        hasher.hexdigest()


def test_the_head_start_gives_the_parts_it_covers_their_crc32c(tmp_path: Path) -> None:
    """The start of the file, hashed before the plan is known: a part of whole units gets
    the CRC32C of its bytes; one that is not hashed whole, or not on unit boundaries,
    gets none (it is read as usual)."""
    data = wav_bytes(10 * 4096 + 123)
    path = tmp_path / "take.wav"
    path.write_bytes(data)
    head = HeadStart(path, len(data), limit=8 * 4096, unit=4096).start()
    while head.hashed < 8 * 4096:
        time.sleep(0.001)
    prefix = head.finish()
    assert prefix.length == 8 * 4096
    assert prefix.sha256.hexdigest() == hashlib.sha256(data[: prefix.length]).hexdigest()

    def crc(offset: int, length: int) -> int:
        return int.from_bytes(google_crc32c.Checksum(data[offset : offset + length]).digest())

    assert prefix.part_crc32c(0, 8192) == crc(0, 8192)
    assert prefix.part_crc32c(8192, 3 * 4096) == crc(8192, 3 * 4096)
    assert prefix.part_crc32c(4096, 8 * 4096) is None  # beyond what was hashed
    assert prefix.part_crc32c(100, 4096) is None  # not on a unit boundary
    assert prefix.part_crc32c(0, 5000) is None

    whole = HeadStart(path, len(data), limit=1 << 30, unit=4096).start()
    while whole.hashed < len(data):
        time.sleep(0.001)
    everything = whole.finish()
    assert everything.part_crc32c(8 * 4096, len(data) - 8 * 4096) == crc(8 * 4096, len(data))


def test_the_sha256_continues_from_the_head_start_whatever_the_chunks() -> None:
    """Chunks that end inside the part hashed ahead, or straddle its end, add only the
    bytes after it."""
    data = wav_bytes(50_000)
    prefix = HashedPrefix(12_345, 4096, [], hashlib.sha256(data[:12_345]))
    hasher = OrderedHasher(len(data), max_buffered=1 << 20, prefix=prefix)
    stop = threading.Event()
    hasher.start(lambda length, offset: data[offset : offset + length], stop)
    for offset in range(0, len(data), 10_000):
        hasher.feed(offset, data[offset : offset + 10_000])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("chunk_bytes", [PART_SIZE // 4, 10_000])
def test_parts_hashed_while_the_job_is_created_are_signed_and_sent_right(
    cloud: FakeCloud, retry: RetryConfig, tmp_path: Path, chunk_bytes: int
) -> None:
    """A slow creation: the head start hashes the whole file meanwhile. Parts of whole
    units take its CRC32Cs, others (chunks that do not divide the parts) are read as
    usual; S3 checks every part's, and the whole file's, CRC32C and the SHA-256 holds."""
    data = wav_bytes(PART_SIZE * 6 + 777)
    path = tmp_path / "slow.wav"
    path.write_bytes(data)
    cloud.on_request(is_api("POST", "/v1/uploads"), lambda: time.sleep(0.3))
    with cloud.client(retry, upload_chunk_bytes=chunk_bytes) as client:
        job = client.upload(path)
    stored = cloud.jobs[job.job_id]
    assert stored.object_bytes == data
    assert stored.completed_sha256 == hashlib.sha256(data).hexdigest()
    assert stored.completed_crc32c is not None  # the fake checked it against the object
    assert cloud.bad_digests == []


def test_part_urls_sign_the_parts_hashed_meanwhile_in_one_request() -> None:
    requests: list[dict[int, str]] = []

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        requests.append(dict(digests))
        return [
            SignedUrl(n, f"https://s3.test/{n}?md5={d}", float("inf")) for n, d in digests.items()
        ]

    urls = PartUrls(sign)
    urls._digests.update({2: "b", 3: "c"})  # hashed by other workers, waiting to sign
    assert urls.get(1, "a").url == "https://s3.test/1?md5=a"
    assert requests == [{1: "a", 2: "b", 3: "c"}]
    assert urls.get(3, "c").url == "https://s3.test/3?md5=c"  # no second request
    assert urls.get(2, "other").url == "https://s3.test/2?md5=other"  # other bytes: signed anew
    assert len(requests) == 2


def test_part_urls_sign_ahead_before_a_sender_has_to_wait() -> None:
    """Once fewer than ``low_water`` signed URLs wait unused, the parts hashed meanwhile
    are signed in the background: the sender that takes one finds it ready."""
    requests: list[list[int]] = []
    signed_ahead = threading.Event()

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        requests.append(sorted(digests))
        if len(requests) > 1:
            signed_ahead.set()
        return [
            SignedUrl(n, f"https://s3.test/{n}?c={d}", float("inf")) for n, d in digests.items()
        ]

    urls = PartUrls(sign, first_batch=2, low_water=2)
    urls.hashed(2, "b")
    assert urls.get(1, "a").url == "https://s3.test/1?c=a"
    assert requests == [[1, 2]]  # part 2's URL now waits unused: one, fewer than two
    urls.hashed(3, "c")
    urls.hashed(4, "d")
    assert signed_ahead.wait(5)
    assert requests[1][0] == 3  # signed ahead, by nobody's request
    assert urls.get(3, "c").url == "https://s3.test/3?c=c"
    assert urls.get(4, "d").url == "https://s3.test/4?c=d"
    assert sorted(n for batch in requests for n in batch) == [1, 2, 3, 4]  # each signed once


def test_part_urls_signed_ahead_in_vain_are_asked_for_again() -> None:
    """A request signed ahead that fails is nobody's error: the sender asks again itself
    and sees what the API answers then."""
    calls: list[list[int]] = []
    failed = threading.Event()

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        calls.append(sorted(digests))
        if len(calls) == 2:
            failed.set()
            raise RateLimitError("Too many requests.", code="throttled", status=429)
        return [SignedUrl(n, f"https://s3.test/{n}", float("inf")) for n in digests]

    urls = PartUrls(sign, first_batch=1, low_water=1)
    urls.get(1, "a")
    urls.hashed(2, "b")  # no URL waits unused: signed ahead, and refused
    assert failed.wait(5)
    assert urls.get(2, "b").url == "https://s3.test/2"
    assert calls == [[1], [2], [2]]
    urls.close()
    urls.hashed(3, "c")  # the upload ended: nothing more is signed ahead
    time.sleep(0.05)
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("notes.wav", b"# Read me\nThis is not audio at all.\n" * 20, "contains text"),
        ("scan.mp3", b"%PDF-1.7\n" + bytes(5000), "PDF document"),
        ("noise.wav", hashlib.shake_256(b"noise").digest(PART_SIZE * 3), "not in an audio format"),
        ("empty.flac", b"", "empty"),
    ],
)
def test_a_file_that_is_not_audio_is_refused_before_any_request(
    client: Client, cloud: FakeCloud, tmp_path: Path, name: str, content: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormatError) as caught:
        client.upload(path)
    assert caught.value.code == "unsupported_format"
    assert says in caught.value.message and name in caught.value.message
    assert "Nothing was uploaded" in caught.value.message
    assert cloud.requests == []  # not even the job was created


def test_every_supported_format_passes_the_local_check(
    client: Client, cloud: FakeCloud, tmp_path: Path
) -> None:
    heads = {
        "a.flac": b"fLaC" + bytes(100),
        "a.aiff": b"FORM" + bytes(4) + b"AIFF" + bytes(100),
        "a.ogg": b"OggS" + bytes(100),
    }
    for name, head in heads.items():
        (tmp_path / name).write_bytes(head)
        client.upload(tmp_path / name)
    assert len(cloud.jobs) == len(heads)


@pytest.mark.parametrize("concurrency", [1, 2, 7])
def test_hashing_ahead_never_waits_on_itself(
    cloud: FakeCloud, retry: RetryConfig, tmp_path: Path, concurrency: int
) -> None:
    """Many parts, small chunks (the SHA-256's buffer fills), one to seven senders: the
    hashers run ahead of the senders without ever blocking each other, and one signing
    request covers several parts."""
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(PART_SIZE * 40 + 7))
    with cloud.client(retry, upload_chunk_bytes=10_000) as client:
        job = client.upload(path, concurrency=concurrency)
    stored = cloud.jobs[job.job_id]
    assert stored.object_bytes == path.read_bytes()
    assert stored.completed_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(cloud.sign_calls) < 41


def test_resuming_an_upload_created_without_crc32c_signs_each_parts_md5(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    """An upload another client created without declaring CRC32C: S3 would refuse a part
    carrying one, so the SDK signs Content-MD5s instead and states no whole-file CRC32C."""
    data = audio_file.read_bytes()
    stored = cloud.add_job(
        status="awaiting_upload", size=len(data), part_size=PART_SIZE, part_count=PARTS
    )
    client.resume(stored.job_id, audio_file, concurrency=3)
    assert stored.object_bytes == data
    for n in range(1, PARTS + 1):
        part = data[(n - 1) * PART_SIZE : n * PART_SIZE]
        md5 = base64.b64encode(hashlib.md5(part).digest()).decode()
        assert cloud.signed_checksums[n] == ("Content-MD5", md5)
    assert stored.completed_crc32c is None
    assert stored.completed_sha256 == hashlib.sha256(data).hexdigest()


def test_a_resumed_crc32c_upload_states_the_whole_files_crc32c(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    """The parts S3 holds already are read again: their CRC32Cs are part of the whole
    file's, and their MD5s tell whether S3 holds this file's bytes."""
    cloud.inject(is_part_put(6), answers(lambda: s3_error(400, "InvalidArgument", "crash")))
    with pytest.raises(UploadError) as caught:
        client.upload(audio_file, concurrency=1)
    job_id = str(caught.value.job_id)
    cloud.part_puts.clear()
    client.resume(job_id, audio_file, concurrency=2)
    assert sorted(cloud.part_puts) == list(range(6, PARTS + 1))
    assert cloud.jobs[job_id].completed_crc32c == crc32c_b64(audio_file.read_bytes())


def clock_noting(thread_name: str, arrived: threading.Event) -> Callable[[], float]:
    """A clock that notes when a thread of that name reads it: PartUrls reads it, holding
    its lock, just before a sender waits for the request under way."""

    def clock() -> float:
        if threading.current_thread().name == thread_name:
            arrived.set()
        return time.time()

    return clock


def test_a_sender_waiting_for_a_request_signed_ahead_stops_with_the_upload() -> None:
    """The upload stops (another part failed) while a sender waits for a request signed
    ahead that takes long (the API throttles it): the sender stops, it neither waits for
    that request nor asks for its URL itself, and nothing more is signed."""
    calls: list[list[int]] = []
    release = threading.Event()

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        calls.append(sorted(digests))
        if len(calls) == 2:
            release.wait(10)  # the request signed ahead, held up
        return [SignedUrl(n, f"https://s3.test/{n}", float("inf")) for n in digests]

    stop = threading.Event()
    waiting = threading.Event()
    urls = PartUrls(
        sign, first_batch=1, low_water=1, stop=stop, clock=clock_noting("sender", waiting)
    )
    urls.get(1, "a")
    urls.hashed(2, "b")  # no URL waits unused: part 2 is signed ahead
    outcome: list[object] = []

    def sender() -> None:
        try:
            outcome.append(urls.get(3, "c"))
        except Exception as caught:
            outcome.append(caught)

    thread = threading.Thread(target=sender, name="sender")
    thread.start()
    try:
        assert waiting.wait(5)
        stop.set()
        thread.join(5)
        assert not thread.is_alive()  # it did not wait for the request signed ahead
        assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    finally:
        release.set()
        thread.join(5)
    urls.hashed(4, "d")  # stopped: nothing is signed ahead either
    assert calls == [[1], [2]]


def test_a_signing_request_that_fails_is_not_asked_again_by_each_waiting_sender() -> None:
    """A sender's signing request fails (after its retries): that error ends the upload.
    The senders that waited for that request stop; they do not each send a request of
    their own, one after the other, every one retried in vain."""
    calls: list[list[int]] = []
    requested = threading.Event()
    waiting = threading.Event()

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        calls.append(sorted(digests))
        requested.set()
        assert waiting.wait(5)  # the other sender waits for this request
        raise RateLimitError("Too many requests.", code="throttled", status=429)

    stop = threading.Event()
    urls = PartUrls(sign, stop=stop, clock=clock_noting("second", waiting))
    outcomes: dict[str, object] = {}

    def sender(part_number: int) -> None:
        try:
            outcomes[threading.current_thread().name] = urls.get(part_number, "x")
        except Exception as caught:
            outcomes[threading.current_thread().name] = caught

    first = threading.Thread(target=sender, args=(1,), name="first")
    first.start()
    assert requested.wait(5)  # the first sender's request is under way
    second = threading.Thread(target=sender, args=(2,), name="second")
    second.start()
    first.join(5)
    second.join(5)
    assert isinstance(outcomes["first"], RateLimitError)
    assert isinstance(outcomes["second"], Stopped)
    assert len(calls) == 1
    assert stop.is_set()


def test_an_api_refusing_to_sign_fails_the_upload_after_one_requests_retries(
    client: Client, cloud: FakeCloud, audio_file: Path
) -> None:
    cloud.inject(
        is_api("POST", "/v1/uploads/.*/parts"),
        answers(lambda: error(503, "unavailable", "busy")),
        times=100,
    )
    with pytest.raises(ServerError) as caught:
        client.upload(audio_file, concurrency=4)
    assert caught.value.status == 503 and caught.value.job_id in cloud.jobs
    assert len(cloud.api_requests("POST", "/v1/uploads/.*/parts")) == 4  # max_attempts
    assert cloud.part_puts == []


def test_urls_that_live_less_than_the_margin_are_not_signed_ahead_in_vain() -> None:
    """The API signs URLs for less than the refresh margin (PRESIGN_TTL_SECONDS under a
    minute, or a clock ahead of the API's): a URL signed ahead would be stale before a
    sender takes it, so the sender would wait for that request and then ask again."""
    now = 1_000_000.0
    calls: list[list[int]] = []

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        calls.append(sorted(digests))
        return [SignedUrl(n, f"https://s3.test/{n}", now + 30) for n in digests]

    urls = PartUrls(sign, first_batch=1, low_water=2, clock=lambda: now)
    assert urls.get(1, "a").url == "https://s3.test/1"
    urls.hashed(2, "b")
    assert urls.get(2, "b").url == "https://s3.test/2"
    urls.hashed(3, "c")
    assert urls.get(3, "c").url == "https://s3.test/3"
    assert len(calls) == 3  # one request per part, as without signing ahead


def test_the_upload_ends_after_the_request_signed_ahead_under_way() -> None:
    """Closing (the upload ended, or failed) waits for a request signed ahead that is
    under way: none outlives the upload, to reach the API after its completion or abort,
    or run on a client closed meanwhile."""
    events: list[str] = []
    release = threading.Event()

    def sign(digests: Mapping[int, str]) -> list[SignedUrl]:
        if 2 in digests:  # signed ahead
            release.wait(10)
            events.append("signed ahead")
        return [SignedUrl(n, f"https://s3.test/{n}", float("inf")) for n in digests]

    urls = PartUrls(sign, first_batch=1, low_water=1)
    urls.get(1, "a")
    urls.hashed(2, "b")  # signed ahead, held up

    def close() -> None:
        urls.close()
        events.append("closed")

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(0.5)  # time enough to return, if closing did not wait
    release.set()
    closer.join(5)
    assert events == ["signed ahead", "closed"]
