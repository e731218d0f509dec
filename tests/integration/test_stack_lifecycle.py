"""The stack starts, listens on loopback only, keeps its files in its state directory, and
stops cleanly on Ctrl-C (SIGINT) or SIGTERM with no process left behind. The moto-S3
variant also runs a job end to end (moto sends the bucket notification itself)."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx
import psutil
import pytest
from audiolift_devstack.samples import write_sample_recording
from audiolift_testkit import StackProcess, start_stack_process

pytestmark = pytest.mark.integration

STACK_FILE_KEYS = {
    "api_url", "s3_endpoint", "api_key", "region", "bucket", "table", "queue_url", "dlq_url",
    "pid",
}  # fmt: skip


def listening_addresses(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    addresses = set()
    for process in processes:
        try:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    addresses.add((connection.laddr.ip, connection.laddr.port))
        except psutil.NoSuchProcess:
            continue
    return addresses


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def check_running(stack: StackProcess) -> set[tuple[str, int]]:
    info = json.loads(stack.stack_file.read_text())
    assert set(info) >= STACK_FILE_KEYS
    assert info["pid"] == stack.process.pid
    assert stack.stack_file.stat().st_mode & 0o077 == 0  # it holds the dev key
    assert httpx.get(f"{info['api_url']}/health").status_code == 200
    unauthorised = httpx.get(f"{info['api_url']}/v1/jobs")
    assert unauthorised.status_code == 401
    authorised = httpx.get(
        f"{info['api_url']}/v1/jobs", headers={"Authorization": f"Bearer {info['api_key']}"}
    )
    assert authorised.status_code == 200, authorised.text

    processes = [psutil.Process(stack.process.pid), *stack.descendants]
    addresses = listening_addresses(processes)
    assert addresses, "nothing listens?"
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses
    return addresses


def check_stopped(stack: StackProcess, addresses: set[tuple[str, int]]) -> None:
    assert stack.process.returncode == 0, stack.log_tail()
    assert stack.survivors() == [], stack.survivors()
    assert not stack.stack_file.exists()
    still_open = [port for _, port in addresses if port_open(port)]
    assert still_open == []
    # SeaweedFS's default unix sockets would be /tmp/seaweedfs-*-<port>.sock.
    strays = [
        path for _, port in addresses for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")
    ]
    assert strays == []


def test_seaweedfs_stack_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    stack = start_stack_process(tmp_path / "state")
    try:
        addresses = check_running(stack)
        weed = [p for p in stack.descendants if p.name() == "weed"]
        assert len(weed) == 4  # master, volume, filer, s3
        for process in weed:
            assert str(tmp_path) in " ".join(process.cmdline())  # state under the state dir
        stopped_in = stack.stop(signal.SIGINT)
    finally:
        if stack.process.poll() is None:
            stack.stop(signal.SIGKILL)
    check_stopped(stack, addresses)
    assert stopped_in < 15
    print(
        f"seaweedfs stack: started in {stack.startup_seconds:.1f} s, stopped in {stopped_in:.1f} s"
    )


def test_moto_s3_stack_runs_a_job_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    small_part = 256 * 1024  # moto is told to accept small parts (S3_UPLOAD_PART_MIN_SIZE)
    stack = start_stack_process(
        tmp_path / "state",
        "--s3",
        "moto",
        "--part-min-bytes",
        str(small_part),
        "--part-size-bytes",
        str(small_part),
    )
    try:
        addresses = check_running(stack)
        info = stack.info.as_dict()
        assert info["s3_backend"] == "moto"
        assert not [p for p in stack.descendants if p.name() == "weed"]

        path = write_sample_recording(tmp_path / "short.wav", seconds=4, samplerate=22050)
        size = path.stat().st_size
        headers = {"Authorization": f"Bearer {info['api_key']}"}
        with httpx.Client(base_url=info["api_url"], headers=headers, timeout=30) as api:
            upload = api.post("/v1/uploads", json={"filename": path.name, "size": size}).json()
            assert upload["part_count"] >= 2
            data = path.read_bytes()
            part_size = upload["part_size"]
            for part in upload["parts"]:
                n = part["part_number"]
                chunk = data[(n - 1) * part_size : n * part_size]
                assert httpx.put(part["url"], content=chunk).status_code == 200
            done = api.post(f"/v1/uploads/{upload['job_id']}/complete", json={})
            assert done.status_code == 200, done.text
            deadline = time.monotonic() + 60
            while True:
                job = api.get(f"/v1/jobs/{upload['job_id']}").json()
                if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
        assert job["status"] == "completed", json.dumps(job)
        stopped_in = stack.stop(signal.SIGTERM)
    finally:
        if stack.process.poll() is None:
            stack.stop(signal.SIGKILL)
    check_stopped(stack, addresses)
    assert stopped_in < 15
