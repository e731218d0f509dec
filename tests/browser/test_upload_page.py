"""The browser page (clients/web) in real headless Chromium on the local stack: a WAV
picked in the file input goes up in parallel parts over the API's /v1 routes, each PUT
straight to S3's presigned URL with its CRC32C, the whole file's CRC32C (combined from the
parts') checked by S3 at completion, and the page follows the job; the
key and the API are checked on load; a file that is not audio or is too large is refused
before any request; a reload mid-upload resumes with only the missing parts; pause,
resume and cancel work; Uppy still uploads through the API's Companion routes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf
from page_support import (
    PART_BYTES,
    SAMPLE_RATE,
    BrowserStack,
    NetworkLog,
    crc32c_base64,
    origin,
    part_crc32cs,
    part_number,
    wav_header,
    write_music_like_wav,
    write_noise_wav,
)

pytestmark = pytest.mark.browser

MiB = 1024 * 1024
SCREENSHOTS = Path("/tmp")

# The share of the first lane's pixel columns where the wave spans more than 4 device
# pixels (silence is drawn as a 1-pixel line).
DRAWN_COLUMNS_JS = """() => {
  const canvas = document.querySelector('#waveform')
  const lane = Math.floor(canvas.height / 2)
  const { data, width } = canvas.getContext('2d').getImageData(0, 0, canvas.width, lane)
  let drawn = 0
  for (let x = 0; x < width; x += 1) {
    let wave = 0
    for (let y = 0; y < lane; y += 1) {
      const i = (y * width + x) * 4
      if (data[i + 3] > 200 && data[i] < 120 && data[i + 2] > 180) wave += 1
    }
    if (wave > 4) drawn += 1
  }
  return drawn / width
}"""


def dash(value: float, digits: int) -> str:
    """A number as the page prints it, with a real minus sign."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def open_page(context: Any, stack: BrowserStack, api_key: str | None = None, **query: str) -> Any:
    page = context.new_page()
    page.goto(stack.page_url(api_key, **query))
    page.wait_for_selector("body[data-ready=true]")
    return page


def wait_connected(page: Any) -> None:
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'ok'")


def wait_job_status(stack: BrowserStack, job_id: str, wanted: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = stack.job_item(job_id)["status"]["S"]
        if status == wanted:
            break
        time.sleep(0.2)
    return status


def throttle_uploads(context: Any, page: Any, bytes_per_second: float) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1,
         "uploadThroughput": bytes_per_second},
    )  # fmt: skip


def test_upload_goes_straight_to_s3_in_parallel_parts_and_the_job_follows(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    wav = tmp_path / "take one.wav"
    audio = write_music_like_wav(wav)  # 11.0 MiB: three 5 MiB parts
    page = chromium.new_page()
    network = NetworkLog(page, stack.info.s3_endpoint)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    page.goto(stack.page_url())
    page.wait_for_selector("body[data-ready=true]")
    # The key came in the query string: kept in localStorage, gone from the address bar.
    assert "key=" not in page.url
    stored = json.loads(page.evaluate("localStorage.getItem('audiolift.settings')"))
    assert stored["apiUrl"] == stack.info.api_url and stored["apiKey"] == stack.info.api_key
    assert stored["parallel"] == 6 and stored["checksums"] is True
    wait_connected(page)

    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector('#job[data-status="completed"]', timeout=90_000)
    job_id = page.get_attribute("#job", "data-job-id")
    assert job_id

    # The audio went to S3 in three presigned part PUTs, several in flight at once, none
    # through the API.
    puts = network.part_puts()
    assert sorted(part_number(url) for _, url, _, _ in puts) == [1, 2, 3], network.entries
    assert network.max_in_flight >= 2  # the first part goes alone (signed soonest)
    assert int(page.get_attribute("#upload", "data-max-in-flight") or 0) >= 2
    for _method, url, _status, _size in puts:
        assert urlsplit(url).path == f"/{stack.info.bucket}/uploads/{job_id}"
        assert "X-Amz-Signature" in url
    assert sum(size for *_, size in puts) == len(audio)
    api_calls = network.to(stack.info.api_url)
    assert not [e for e in api_calls if e[0] == "PUT"]
    assert max(size for *_, size in api_calls) < 4096  # the API never sees audio bytes
    paths = [(m, urlsplit(u).path) for m, u, s, _ in api_calls if s < 400]
    assert ("POST", "/v1/uploads") in paths
    assert ("POST", f"/v1/uploads/{job_id}/complete") in paths

    # The upload was declared CRC32C; every part was signed with its CRC32C, in batches
    # (fewer calls than parts); each PUT sent what the API said to send with it.
    created = next(r for r in network.requests if r.url.endswith("/v1/uploads"))
    assert json.loads(created.post_data)["checksum_algorithm"] == "CRC32C"
    signs = [
        r for r in network.requests if r.method == "POST" and r.url.endswith(f"{job_id}/parts")
    ]
    assert 1 <= len(signs) < 3
    crcs = {k: v for r in signs for k, v in json.loads(r.post_data)["checksum_crc32c"].items()}
    assert crcs == part_crc32cs(audio)
    signed = {
        p["part_number"]: p.get("headers") or {}
        for r in signs
        for p in r.response().json()["parts"]
    }
    for request in network.requests:
        if request.method == "PUT":
            wanted = signed[part_number(request.url)]["x-amz-checksum-crc32c"]
            assert request.headers.get("x-amz-checksum-crc32c") == wanted
    # Completion stated the whole file's CRC32C, combined from the parts' CRCs: the same
    # as a straight CRC32C of the file.
    completed = next(r for r in network.requests if r.url.endswith(f"{job_id}/complete"))
    assert json.loads(completed.post_data)["crc32c"] == crc32c_base64(audio)

    # Side effects: the object in S3 is the file, with the file's CRC32C as its checksum
    # (SeaweedFS, as S3, keeps the FULL_OBJECT CRC it checked; moto composes its own);
    # the job completed with its result.
    assert stack.object_sha256(f"uploads/{job_id}") == hashlib.sha256(audio).hexdigest()
    if stack.name == "seaweedfs":
        head = stack.clients.s3.head_object(
            Bucket=stack.info.bucket, Key=f"uploads/{job_id}", ChecksumMode="ENABLED"
        )
        assert head.get("ChecksumCRC32C") == crc32c_base64(audio)
    item = stack.job_item(job_id)
    assert item["status"]["S"] == "completed"
    assert item["filename"]["S"] == "take one.wav"
    assert item["checksum_algorithm"]["S"] == "CRC32C"
    document = json.loads(
        stack.clients.s3.get_object(Bucket=stack.info.bucket, Key=f"results/{job_id}.json")[
            "Body"
        ].read()
    )
    # Nothing is left to resume.
    assert page.evaluate("localStorage.getItem('audiolift.pending-uploads')") == "[]"

    # What the person sees: the upload, then the document's own figures.
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    assert "Uploaded 11.0 MiB" in page.inner_text("#upload-text")
    assert job_id in page.inner_text("#job-text")
    assert page.inner_text("#job-status") == "done"
    assert page.locator("#error").is_hidden()
    page.wait_for_selector("#result canvas#waveform")
    api_calls = network.to(stack.info.api_url)
    polled = [p for m, u, s, _ in api_calls if m == "GET" and (p := urlsplit(u).path)]
    assert f"/v1/jobs/{job_id}" in polled and f"/v1/jobs/{job_id}/result" in polled
    result_text = page.inner_text("#result")
    view = httpx.get(
        f"{stack.info.api_url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {stack.info.api_key}"},
    ).json()
    if view.get("verified_sha256"):  # a processor that hashes what it analyses: shown
        assert view["verified_sha256"] == hashlib.sha256(audio).hexdigest()
        assert f"SHA-256 {view['verified_sha256'][:16]}" in result_text
    loudness = document["loudness"]
    assert f"{dash(loudness['integrated_lufs'], 1)} LUFS" in result_text
    assert f"{dash(loudness['loudness_range_lu'], 1)} LU" in result_text
    assert f"{dash(loudness['true_peak_dbtp'], 1)} dBTP" in result_text
    assert f"{document['silence']['ratio'] * 100:.1f} %" in result_text
    rows = page.locator("table.channels tbody tr")
    assert rows.count() == 2
    for row, channel in zip(rows.all(), document["channels"], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == f"{dash(channel['peak_dbfs'], 2)} dBFS"
        assert cells[1] == f"{dash(channel['rms_dbfs'], 2)} dBFS"
    # The waveform is drawn: wave-coloured columns everywhere but the two silent seconds.
    drawn = page.evaluate(DRAWN_COLUMNS_JS)
    assert 0.95 < drawn < 0.98, drawn  # 58 of 60 seconds
    page.screenshot(path=SCREENSHOTS / f"audiolift-web-upload-{stack.name}.png", full_page=True)
    assert not page_errors


def test_a_wrong_key_or_a_missing_api_is_reported_on_load(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    refused = httpx.get(
        f"{stack.info.api_url}/v1/jobs", headers={"Authorization": "Bearer not-the-key"}
    )
    assert refused.status_code == 401
    api_message = refused.json()["error"]["message"]

    # On load, before anything is picked: the API's own message, the settings open.
    page = open_page(chromium, stack, "not-the-key")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-message") == api_message
    assert page.inner_text("#error-code") == "unauthorized"
    assert page.get_attribute("#connection", "data-state") == "error"
    assert page.locator("#settings-form").is_visible()
    page.screenshot(path=SCREENSHOTS / f"audiolift-web-wrong-key-{stack.name}.png", full_page=True)

    # A file picked now starts nothing: the check runs again and says the same.
    wav = tmp_path / "short.wav"
    write_noise_wav(wav, 8192)
    network = NetworkLog(page, stack.info.s3_endpoint)
    page.set_input_files("#file-input", str(wav))
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'error'")
    assert page.inner_text("#error-message") == api_message
    assert not network.part_puts(status=None)
    assert not [e for e in network.to(stack.info.api_url) if "/v1/uploads" in e[1]]

    # An API that does not answer is named as such, on load too.
    page.goto(f"{stack.web_origin}/?api=http://127.0.0.1:9&key=whatever")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.startsWith('Cannot reach the API')"
    )
    # The right key in the form is accepted and the panel folds away.
    page.fill("#api-url", stack.info.api_url)
    page.fill("#api-key", stack.info.api_key)
    page.click("#save-settings")
    wait_connected(page)
    assert page.text_content("#settings-status") == "Connected: the API accepts this key."
    assert page.locator("#settings-form").is_hidden()
    assert page.locator("#error").is_hidden()


def test_a_file_that_is_not_audio_or_too_large_is_refused_before_any_request(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    png = tmp_path / "holiday.wav"  # a PNG renamed .wav
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(13) + b"IHDR" + bytes(200))
    notes = tmp_path / "notes.mp3"
    notes.write_text("not a recording\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    # A WAV one byte over the service's limit (5 GiB): sparse, so it costs no disk.
    huge = tmp_path / "huge.wav"
    with huge.open("wb") as out:
        out.write(wav_header(5 * 1024**3 + 1 - 44))
        out.truncate(5 * 1024**3 + 1)
    page = open_page(chromium, stack)
    wait_connected(page)  # the load's own checks are done
    network = NetworkLog(page, stack.info.s3_endpoint)

    page.set_input_files("#file-input", str(png))
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error-message")
    assert message.startswith("holiday.wav: The file is a PNG image"), message
    page.screenshot(path=SCREENSHOTS / f"audiolift-web-not-audio-{stack.name}.png", full_page=True)

    page.set_input_files("#file-input", str(notes))
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.includes('contains text')"
    )
    page.set_input_files("#file-input", str(empty))
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.includes('empty.wav is empty')"
    )
    assert page.locator("#picker").is_visible()
    assert not network.entries  # not one request, to the API or to S3

    page.set_input_files("#file-input", str(huge))
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.includes('huge.wav')"
    )
    assert "5.00 GiB" in page.inner_text("#error-message")  # the size, read locally
    assert not network.part_puts(status=None)  # refused before any part
    assert page.locator("#picker").is_visible()


def upload_slowly_until(
    chromium: Any, stack: BrowserStack, wav: Path, *, parallel: int, part_puts: int
) -> tuple[Any, str, NetworkLog]:
    """Start uploading ``wav`` from a fresh page whose PUTs are throttled (so a reload
    lands mid-upload), and return once ``part_puts`` part PUTs have started: the page
    (which accepts the "leave the page?" dialog), the job's id and its network log."""
    page = open_page(chromium, stack, parallel=str(parallel))
    page.on("dialog", lambda dialog: dialog.accept())
    throttle_uploads(chromium, page, 6e6)
    network = NetworkLog(page, stack.info.s3_endpoint)
    wait_connected(page)
    page.set_input_files("#file-input", str(wav))
    page.wait_for_function("document.querySelector('#upload').dataset.jobId")
    job_id = page.get_attribute("#upload", "data-job-id")
    assert job_id
    deadline = time.monotonic() + 60
    while len(network.part_puts()) < part_puts and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return page, job_id, network


def test_a_reload_mid_upload_resumes_with_only_the_missing_parts(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    wav = tmp_path / "long night.wav"
    audio = write_noise_wav(wav, 6 * PART_BYTES - 12345)  # six parts
    page, job_id, network = upload_slowly_until(chromium, stack, wav, parallel=2, part_puts=2)
    # Bounded by the setting, as the page counts its PUTs (the browser's request events
    # may see the next PUT start before the last one's "finished" event arrives).
    assert page.get_attribute("#upload", "data-max-in-flight") == "2"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")

    # After the reload: the page remembers the upload (never the bytes) and says so.
    page.wait_for_selector(f'#pending-list li[data-job-id="{job_id}"]')
    remembered = json.loads(page.evaluate("localStorage.getItem('audiolift.pending-uploads')"))
    assert [(e["jobId"], e["name"], e["size"]) for e in remembered] == [
        (job_id, "long night.wav", len(audio))
    ]
    held = stack.held_parts(job_id)
    assert 2 <= len(held) < 6, held
    network = NetworkLog(page, stack.info.s3_endpoint)
    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector("#resume-offer:not([hidden])")
    assert f"({len(held)} of 6 parts)" in page.inner_text("#resume-text")
    page.screenshot(path=SCREENSHOTS / f"audiolift-web-resume-{stack.name}.png", full_page=True)
    page.click("#resume-upload")
    page.wait_for_selector('#upload[data-state="done"]', timeout=120_000)

    # Only the parts S3 did not hold went up, each once; the object is the file. The
    # whole file's CRC32C, which S3 checked, includes the held parts' CRCs (computed from
    # the file's bytes after the reload).
    sent = sorted(part_number(url) for _, url, _, _ in network.part_puts())
    assert sent == sorted(set(range(1, 7)) - set(held)), (sent, held)
    completed = next(r for r in network.requests if r.url.endswith(f"{job_id}/complete"))
    assert json.loads(completed.post_data)["crc32c"] == crc32c_base64(audio)
    assert page.get_attribute("#upload", "data-job-id") == job_id
    assert stack.object_sha256(f"uploads/{job_id}") == hashlib.sha256(audio).hexdigest()
    assert page.evaluate("localStorage.getItem('audiolift.pending-uploads')") == "[]"
    stack.cancel_job(job_id)  # noise: nothing to learn from analysing it


def test_a_file_changed_before_its_upload_resumed_is_refused_at_completion(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    """The parts S3 holds from before a reload belong to the file as it was then. Edited
    since (its size and modified time kept, so the page offers to resume), the whole
    file's CRC32C (with the held parts' CRCs read from the file now) is not the object's:
    S3 refuses to complete, the page says so and aborts the upload, nothing is stored."""
    stack = browser_stack
    if stack.name == "moto":
        pytest.skip("moto's S3 does not check the whole object's CRC32C (SeaweedFS and S3 do)")
    wav = tmp_path / "edited.wav"
    audio = write_noise_wav(wav, 4 * PART_BYTES)
    page, job_id, _ = upload_slowly_until(chromium, stack, wav, parallel=1, part_puts=1)
    page.reload()
    page.wait_for_selector(f'#pending-list li[data-job-id="{job_id}"]')
    held = stack.held_parts(job_id)
    assert 1 in held, held
    stat = wav.stat()
    edited = bytearray(audio)
    edited[PART_BYTES // 2] ^= 0xFF  # in part 1, which S3 holds
    wav.write_bytes(bytes(edited))
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    page.set_input_files("#file-input", str(wav))
    page.click("#resume-upload")
    page.wait_for_selector("#error:not([hidden])", timeout=120_000)
    assert page.inner_text("#error-code") == "checksum_mismatch"
    assert "edited.wav changed since its upload started" in page.inner_text("#error-message")
    assert page.get_attribute("#upload", "data-state") == "failed"
    listed = stack.clients.s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=f"uploads/{job_id}")
    assert "Contents" not in listed
    assert wait_job_status(stack, job_id, "cancelled") == "cancelled"
    assert page.evaluate("localStorage.getItem('audiolift.pending-uploads')") == "[]"


def test_pause_resume_and_cancel(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    wav = tmp_path / "rehearsal.wav"
    audio = write_noise_wav(wav, 3 * PART_BYTES)
    page = open_page(chromium, stack, parallel="2")
    throttle_uploads(chromium, page, 3e6)
    network = NetworkLog(page, stack.info.s3_endpoint)
    wait_connected(page)
    page.set_input_files("#file-input", str(wav))
    page.wait_for_function(
        "document.querySelector('#upload-progress').value >= 10 &&"
        " document.querySelector('#upload-text').textContent.includes('left')"
    )
    # The progress reads like the CLI's: percent, bytes, rate, time left.
    text = page.inner_text("#upload-text")
    assert " % · " in text and "MiB/s" in text and "left" in text, text
    page.click("#pause-upload")
    assert page.get_attribute("#upload", "data-state") == "paused"
    deadline = time.monotonic() + 5
    while network.in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # the aborted PUTs' "failed" events arrive
    assert network.in_flight == 0
    paused_at = len(network.part_puts(status=None))
    page.wait_for_timeout(700)
    assert len(network.part_puts(status=None)) == paused_at  # nothing goes up while paused
    assert "paused" in page.inner_text("#upload-text")
    page.click("#pause-upload")  # now "Resume"
    page.wait_for_selector('#upload[data-state="done"]', timeout=60_000)
    job_id = page.get_attribute("#upload", "data-job-id")
    assert stack.object_sha256(f"uploads/{job_id}") == hashlib.sha256(audio).hexdigest()
    stack.cancel_job(job_id)

    # Cancel: the multipart upload is aborted through the API, the job is cancelled.
    page.click("#again")
    page.set_input_files("#file-input", str(wav))
    # The panel keeps the finished upload's job id and 100 % until the new one starts.
    page.wait_for_function(
        "([previous]) => { const panel = document.querySelector('#upload');"
        " return panel.dataset.jobId && panel.dataset.jobId !== previous &&"
        " document.querySelector('#upload-progress').value >= 10 }",
        arg=[job_id],
    )
    job_id = page.get_attribute("#upload", "data-job-id")
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and r.url.endswith(f"/v1/uploads/{job_id}")
    ) as aborted:
        page.click("#cancel-upload")
    assert aborted.value.status == 204
    assert origin(aborted.value.url) == stack.info.api_url
    assert page.locator("#picker").is_visible()
    assert page.locator("#upload").is_hidden()
    assert wait_job_status(stack, job_id, "cancelled") == "cancelled"
    s3 = stack.clients.s3
    uploads = s3.list_multipart_uploads(Bucket=stack.info.bucket, Prefix=f"uploads/{job_id}")
    assert not uploads.get("Uploads")
    assert "Contents" not in s3.list_objects_v2(
        Bucket=stack.info.bucket, Prefix=f"uploads/{job_id}"
    )
    assert page.locator("#error").is_hidden()
    assert page.evaluate("localStorage.getItem('audiolift.pending-uploads')") == "[]"


def test_uppy_still_uploads_through_the_companion_routes(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    stack = browser_stack
    wav = tmp_path / "uppy take.wav"
    audio = write_music_like_wav(wav, seconds=30)  # 5.5 MiB: two parts
    page = chromium.new_page()
    network = NetworkLog(page, stack.info.s3_endpoint)
    page.goto(stack.page_url(page="uppy.html"))
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#file", str(wav))
    page.wait_for_selector('#status[data-state="done"]', timeout=60_000)
    job_id = page.get_attribute("#status", "data-job-id")
    assert job_id
    paths = [(m, urlsplit(u).path) for m, u, s, _ in network.to(stack.info.api_url) if s < 400]
    assert ("POST", "/s3/multipart") in paths
    assert any(m == "POST" and p.endswith("/complete") for m, p in paths)
    assert sorted(part_number(u) for _, u, _, _ in network.part_puts()) == [1, 2]
    assert stack.object_sha256(f"uploads/{job_id}") == hashlib.sha256(audio).hexdigest()
    assert wait_job_status(stack, job_id, "completed", timeout=60) == "completed"


# In the page: an upload declared CRC32C; sign part 1 with the CRC32C of its real bytes,
# PUT other bytes of the same size with the headers the API returned (the browser sends
# the signed x-amz-checksum-crc32c across origins: CORS allows it), then the real bytes.
# Playwright cannot rewrite a Blob upload's body on the way (its route hangs), so the
# corruption happens here.
CORRUPTED_PART_JS = """async ({ api, key, crc }) => {
  const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }
  const size = 5 * 1024 * 1024
  const created = await (await fetch(`${api}/v1/uploads`, {
    method: 'POST', headers: auth,
    body: JSON.stringify({ filename: 'x.wav', size: size * 2, checksum_algorithm: 'CRC32C' }),
  })).json()
  const signed = await (await fetch(`${api}/v1/uploads/${created.job_id}/parts`, {
    method: 'POST', headers: auth,
    body: JSON.stringify({ part_numbers: [1], checksum_crc32c: { 1: crc } }),
  })).json()
  const part = signed.parts[0]
  const put = async (fill) => {
    const response = await fetch(part.url, {
      method: 'PUT', headers: part.headers, body: new Uint8Array(size).fill(fill),
    })
    return { status: response.status, text: await response.text() }
  }
  const corrupted = await put(0x62)
  const intact = await put(0x61)
  await fetch(`${api}/v1/uploads/${created.job_id}`, { method: 'DELETE', headers: auth })
  return { headers: part.headers, corrupted, intact }
}"""


def test_a_part_corrupted_on_the_way_is_refused_by_s3(
    chromium: Any, browser_stack: BrowserStack
) -> None:
    stack = browser_stack
    if stack.name == "moto":
        pytest.skip("moto's S3 does not check part checksums (SeaweedFS and S3 do)")
    page = open_page(chromium, stack)
    crc = crc32c_base64(b"a" * PART_BYTES)
    outcome = page.evaluate(
        CORRUPTED_PART_JS, {"api": stack.info.api_url, "key": stack.info.api_key, "crc": crc}
    )
    assert outcome["headers"] == {"x-amz-checksum-crc32c": crc}
    assert outcome["corrupted"]["status"] == 400
    assert "BadDigest" in outcome["corrupted"]["text"]
    assert outcome["intact"]["status"] == 200


def test_a_busy_api_is_asked_again_after_the_wait_it_asks_for(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    """The API answers 503 with Retry-After when S3 or DynamoDB is throttled or does not
    answer: the page signs and completes again after that wait, and the upload goes on."""
    stack = browser_stack
    wav = tmp_path / "busy.wav"
    audio = write_noise_wav(wav, 2 * PART_BYTES + 999)
    page = open_page(chromium, stack)
    refused: list[str] = []

    def busy_once(route: Any) -> None:
        kind = "complete" if route.request.url.endswith("/complete") else "sign"
        if kind in refused:
            route.continue_()
            return
        refused.append(kind)
        route.fulfill(
            status=503,
            headers={"Retry-After": "1", "Access-Control-Allow-Origin": "*"},
            content_type="application/json",
            body=json.dumps(
                {"error": {"code": "service_unavailable", "message": "Try again shortly."}}
            ),
        )

    page.route(f"{stack.info.api_url}/v1/uploads/*/parts", busy_once)
    page.route(f"{stack.info.api_url}/v1/uploads/*/complete", busy_once)
    wait_connected(page)
    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector('#upload[data-state="done"]', timeout=60_000)
    assert refused == ["sign", "complete"]
    job_id = page.get_attribute("#upload", "data-job-id")
    assert stack.object_sha256(f"uploads/{job_id}") == hashlib.sha256(audio).hexdigest()
    stack.cancel_job(job_id)  # noise: nothing to learn from analysing it


def test_a_short_recording_is_not_refused_by_the_local_check(
    chromium: Any, browser_stack: BrowserStack, tmp_path: Path
) -> None:
    """The local check must not refuse real audio: a 0.1 s WAV (smaller than the bytes
    the sniffer looks at) and a FLAC go through to the API."""
    stack = browser_stack
    short = tmp_path / "blip.flac"
    sf.write(short, np.zeros((SAMPLE_RATE // 10, 1)), SAMPLE_RATE, format="FLAC")
    page = open_page(chromium, stack)
    wait_connected(page)
    page.set_input_files("#file-input", str(short))
    page.wait_for_selector('#upload[data-state="done"]', timeout=30_000)
    assert page.locator("#error").is_hidden()
