"""napshare-tracker serves TLS by default: its own certificate, owner-only, grpcurl -cacert."""

import json
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import certificates_in, fingerprint
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

GRPCURL = Path(sys.executable).with_name("grpcurl")


def test_the_default_tracker_makes_its_certificate_once_and_serves_only_tls(
    spawn_tracker, tmp_path
):
    tracker = spawn_tracker(tls=True)
    identity = tmp_path / "tracker-state" / "identity"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o700
    for name in ("cert.pem", "key.pem"):
        assert stat.S_IMODE((identity / name).stat().st_mode) == 0o600
    printed = fingerprint(certificates_in((identity / "cert.pem").read_bytes())[0])

    with grpc.insecure_channel(tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Search(tracker_pb2.SearchRequest(name="x.mp4"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert tracker.stop() == 0
    assert f"serving TLS; certificate SHA-256 fingerprint {printed}\n" in "".join(tracker.stderr)

    again = spawn_tracker(tls=True)  # the same state folder: the same certificate
    assert again.stop() == 0
    assert printed in "".join(again.stderr)


def test_grpcurl_with_cacert_talks_to_the_tls_tracker(spawn_tracker, tmp_path):
    tracker = spawn_tracker(tls=True)
    cert = tmp_path / "tracker-state" / "identity" / "cert.pem"

    def grpcurl(*args: str) -> str:
        done = subprocess.run(
            [str(GRPCURL), "-cacert", str(cert), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "napshare.v1.TrackerService" in grpcurl(tracker.address, "list").split()
    found = json.loads(
        grpcurl("-d", '{"name": "x.mp4"}', tracker.address, "napshare.v1.TrackerService/Search")
    )
    assert found == {"gathering": True}
    plain = subprocess.run(
        [str(GRPCURL), "-plaintext", tracker.address, "list"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode != 0


def test_a_corrupt_tracker_identity_is_one_line_and_its_exit_code(python, tmp_path):
    identity = tmp_path / "state" / "identity"
    identity.mkdir(parents=True)
    (identity / "cert.pem").write_text("not a certificate")
    (identity / "key.pem").write_text("not a key")
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--port", "0", "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.IDENTITY_FILES
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("napshare-tracker: the tracker's identity in ")
    assert done.stdout == ""
