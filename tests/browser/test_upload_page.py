"""The browser page (clients/web) in real headless Chromium: a WAV picked in the file
input goes up with Uppy's @uppy/aws-s3 through the API's Companion routes, its parts PUT
straight to S3's presigned URLs, and the page follows the job; a wrong API key shows the
API's own error message."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf
from browser_harness import BrowserStack

pytestmark = pytest.mark.browser

SAMPLE_RATE = 48_000
SECONDS = 60  # 16-bit stereo: 11.5 MB, three Uppy parts (5 MiB, 5 MiB, the rest)
MiB = 1024 * 1024
SCREENSHOTS = Path("/tmp")


def write_music_like_wav(path: Path) -> bytes:
    """A minute of stereo: a few harmonic notes with attack/decay envelopes, two seconds
    of digital silence in the middle; returns the file's bytes."""
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    note = np.floor(t / 0.5).astype(int)
    freqs = np.array([220.0, 277.18, 329.63, 440.0, 369.99, 293.66])[note % 6]
    phase = 2 * np.pi * np.cumsum(freqs) / SAMPLE_RATE
    envelope = np.exp(-3.0 * (t % 0.5))
    tone = (np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)) * envelope
    left = 0.25 * tone
    right = 0.2 * np.roll(tone, 240)
    stereo = np.stack([left, right], axis=1)
    stereo[29 * SAMPLE_RATE : 31 * SAMPLE_RATE] = 0.0
    sf.write(path, stereo, SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


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


def page_url(web_origin: str, stack: BrowserStack, api_key: str) -> str:
    return f"{web_origin}/index.html?{urlencode({'api': stack.api_url, 'key': api_key})}"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class NetworkLog:
    """Every response the page saw: (method, url, status, request Content-Length)."""

    def __init__(self, page: Any):
        self.entries: list[tuple[str, str, int, int]] = []
        page.on("response", self._record)

    def _record(self, response: Any) -> None:
        request = response.request
        # Playwright does not keep Blob bodies (the part PUTs): the header gives their size.
        length = request.header_value("content-length")
        self.entries.append((request.method, request.url, response.status, int(length or 0)))

    def to(self, target_origin: str, method: str | None = None) -> list[tuple[str, str, int, int]]:
        return [
            e
            for e in self.entries
            if origin(e[1]) == target_origin and (method is None or e[0] == method)
        ]


def test_upload_goes_from_the_browser_straight_to_s3_and_the_job_follows(
    chromium: Any, browser_stack: BrowserStack, web_origin: str, tmp_path: Path
) -> None:
    wav = tmp_path / "take one.wav"
    audio = write_music_like_wav(wav)
    page = chromium.new_page()
    network = NetworkLog(page)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    page.goto(page_url(web_origin, browser_stack, browser_stack.api_key))
    page.wait_for_selector("body[data-ready=true]")
    # The key came in the query string: kept in localStorage, gone from the address bar.
    assert "key=" not in page.url
    stored = json.loads(page.evaluate("localStorage.getItem('audiolift.settings')"))
    assert stored == {"apiUrl": browser_stack.api_url, "apiKey": browser_stack.api_key}

    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector('#job[data-status="completed"]', timeout=90_000)
    job_id = page.get_attribute("#job", "data-job-id")
    assert job_id

    # The audio went to S3 in three presigned part PUTs, none through the API.
    puts = network.to(browser_stack.s3_endpoint, "PUT")
    assert len(puts) == 3, network.entries
    for _method, url, status, _size in puts:
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).path == f"/{browser_stack.bucket}/uploads/{job_id}"
        assert "X-Amz-Signature" in query and "uploadId" in query
        assert status == 200
    assert sorted(int(parse_qs(urlsplit(u).query)["partNumber"][0]) for _, u, _, _ in puts) == [
        1,
        2,
        3,
    ]
    assert sum(size for *_, size in puts) == len(audio)
    api_calls = network.to(browser_stack.api_url)
    assert not [e for e in api_calls if e[0] == "PUT"]
    assert max(size for *_, size in api_calls) < 4096  # the API never sees audio bytes
    companion_paths = [(m, urlsplit(u).path) for m, u, s, _ in api_calls if s < 400]
    assert ("POST", "/s3/multipart") in companion_paths
    assert any(m == "POST" and p.endswith("/complete") for m, p in companion_paths)

    # Side effects: the object in S3 is the file; the job completed with its result.
    stored_object = browser_stack.s3.get_object(
        Bucket=browser_stack.bucket, Key=f"uploads/{job_id}"
    )
    assert hashlib.sha256(stored_object["Body"].read()).digest() == hashlib.sha256(audio).digest()
    item = browser_stack.dynamodb.get_item(
        TableName=browser_stack.table, Key={"job_id": {"S": job_id}}
    )["Item"]
    assert item["status"]["S"] == "completed"
    assert item["filename"]["S"] == "take one.wav"
    document = json.loads(
        browser_stack.s3.get_object(Bucket=browser_stack.bucket, Key=f"results/{job_id}.json")[
            "Body"
        ].read()
    )
    polled = [p for m, u, s, _ in api_calls if m == "GET" and (p := urlsplit(u).path)]
    assert f"/v1/jobs/{job_id}" in polled and f"/v1/jobs/{job_id}/result" in polled

    # What the person sees: the upload, then the document's own figures.
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    assert "Uploaded 11.0 MiB" in page.inner_text("#upload-text")
    assert job_id in page.inner_text("#job-text")
    assert page.inner_text("#job-status") == "done"
    assert page.locator("#error").is_hidden()
    page.wait_for_selector("#result canvas#waveform")
    result_text = page.inner_text("#result")
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
    page.screenshot(
        path=SCREENSHOTS / f"audiolift-web-upload-{browser_stack.name}.png", full_page=True
    )
    assert not page_errors


def test_a_wrong_api_key_shows_the_apis_own_message(
    chromium: Any, browser_stack: BrowserStack, web_origin: str, tmp_path: Path
) -> None:
    refused = httpx.post(
        f"{browser_stack.api_url}/s3/multipart",
        json={"filename": "x.wav", "type": "audio/wav", "metadata": {}},
        headers={"Authorization": "Bearer not-the-key"},
    )
    assert refused.status_code == 401
    api_message = refused.json()["error"]["message"]

    wav = tmp_path / "short.wav"
    sf.write(wav, np.zeros((4800, 1)), SAMPLE_RATE)
    page = chromium.new_page()
    network = NetworkLog(page)
    page.goto(page_url(web_origin, browser_stack, "not-the-key"))
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-message") == api_message
    assert page.inner_text("#error-code") == "unauthorized"
    assert not network.to(browser_stack.s3_endpoint)  # nothing reached S3

    # The settings form's check says the same.
    page.click("#settings summary")
    page.fill("#api-key", "still-not-the-key")
    page.click("#save-settings")
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'error'")
    assert page.inner_text("#error-message") == api_message
    page.screenshot(
        path=SCREENSHOTS / f"audiolift-web-wrong-key-{browser_stack.name}.png", full_page=True
    )

    # An API that does not answer is named as such; the right key is accepted.
    page.fill("#api-url", "http://127.0.0.1:9")
    page.click("#save-settings")
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.startsWith('Cannot reach the API')"
    )
    page.fill("#api-url", browser_stack.api_url)
    page.fill("#api-key", browser_stack.api_key)
    page.click("#save-settings")
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'ok'")
    assert page.text_content("#settings-status") == "Connected: the API accepts this key."
    assert page.locator("#settings-form").is_hidden()  # the panel folds away once it works
    assert page.locator("#error").is_hidden()


def test_a_file_that_is_not_audio_is_refused_before_any_request(
    chromium: Any, browser_stack: BrowserStack, web_origin: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    page = chromium.new_page()
    network = NetworkLog(page)
    page.goto(page_url(web_origin, browser_stack, browser_stack.api_key))
    page.wait_for_selector("body[data-ready=true]")

    page.set_input_files("#file-input", str(notes))
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.txt" in page.inner_text("#error-message")
    assert "audio" in page.inner_text("#error-message")

    page.set_input_files("#file-input", str(empty))
    page.wait_for_function(
        "document.querySelector('#error-message').textContent.includes('empty.wav is empty')"
    )
    assert page.locator("#picker").is_visible()
    assert not network.to(browser_stack.api_url) and not network.to(browser_stack.s3_endpoint)


def test_cancelling_an_upload_aborts_it_in_s3_and_cancels_the_job(
    chromium: Any, browser_stack: BrowserStack, web_origin: str, tmp_path: Path
) -> None:
    wav = tmp_path / "long take.wav"
    write_music_like_wav(wav)
    page = chromium.new_page()
    # Slow uploads down (about 2 MB/s) so that Cancel lands in the middle of a part.
    cdp = chromium.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 2e6},
    )
    page.goto(page_url(web_origin, browser_stack, browser_stack.api_key))
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#file-input", str(wav))
    page.wait_for_function(
        "document.querySelector('#upload').dataset.jobId &&"
        " document.querySelector('#upload-progress').value >= 10"
    )
    job_id = page.get_attribute("#upload", "data-job-id")
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and "/s3/multipart/" in r.url
    ) as aborted:
        page.click("#cancel-upload")
    assert aborted.value.status == 200
    assert origin(aborted.value.url) == browser_stack.api_url
    assert page.locator("#picker").is_visible()
    assert page.locator("#upload").is_hidden()

    # Uppy aborts through the API's Companion route; the job is cancelled, S3 holds nothing.
    deadline = time.monotonic() + 20
    status = ""
    while time.monotonic() < deadline:
        item = browser_stack.dynamodb.get_item(
            TableName=browser_stack.table, Key={"job_id": {"S": job_id}}
        )["Item"]
        status = item["status"]["S"]
        if status == "cancelled":
            break
        time.sleep(0.2)
    assert status == "cancelled"
    uploads = browser_stack.s3.list_multipart_uploads(
        Bucket=browser_stack.bucket, Prefix=f"uploads/{job_id}"
    )
    assert not uploads.get("Uploads")
    assert "Contents" not in browser_stack.s3.list_objects_v2(
        Bucket=browser_stack.bucket, Prefix=f"uploads/{job_id}"
    )
    assert page.locator("#error").is_hidden()
