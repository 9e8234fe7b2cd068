"""The benchmark harness at tiny sizes, end to end, so `make bench` cannot rot between runs."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from napshare.peer.downloading import fetch
from napshare.v1 import tracker_pb2

from tests.bench import apps, catalog, loadgen, report, run, swarm, tracker_scale
from tests.bench.config import RUNNER, Config
from tests.bench.files import MIB, format_size, make_random_file, parse_size
from tests.bench.procs import median, percentile, running
from tests.support import delayproxy, netns
from tests.support.files import ROOT

pytestmark = pytest.mark.slow  # the bench, at tiny sizes: left out of make check


def test_sizes_parse_and_print_both_ways() -> None:
    assert parse_size("4MiB") == 4 * MIB
    assert parse_size("1GiB") == 1024 * MIB
    assert parse_size("512") == 512
    assert format_size(4 * 1024 * MIB) == "4 GiB"
    with pytest.raises(ValueError, match="must look like"):
        parse_size("four megs")


def test_every_section_of_a_full_run_says_how_to_measure_it_again(tmp_path: Path) -> None:
    config = Config(workdir=tmp_path)  # a full run's sizes: the quick run never asks this

    for name in run.SECTIONS:
        assert config.reproduce(name).startswith(f"{RUNNER} --only {name}"), name


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.5) == 50
    assert percentile([7.0], 0.99) == 7.0
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_a_peers_hashing_time_comes_from_the_times_on_its_log_lines() -> None:
    log = "\n".join(
        [
            "2026-12-02 02:35:53,715 INFO napshare.peer.serving.server: serving /tmp/s on port 1",
            "listening on 127.0.0.1:39211",
            "2026-12-02 02:35:53,716 INFO napshare.peer.folder.store: hashing a.bin (3000 bytes)",
            "2026-12-02 02:35:55,216 INFO napshare.peer.folder.store: hashing b.bin (9000 bytes)",
            "2026-12-02 02:35:56,916 INFO napshare.peer.tracker_link: joined 127.0.0.1:1 as ...",
        ]
    )
    assert swarm._hashing_seconds(log) == pytest.approx(3.2)
    assert swarm._hashing_seconds(log.replace("hashing", "found")) is None


def test_hand_encoded_join_requests_decode_as_protobuf() -> None:
    entries = catalog.make_catalog(50)
    request = tracker_pb2.JoinRequest.FromString(
        catalog.Encoder(entries).join("10.0.0.7", 6699, [0, 3, 49])
    )
    assert (request.host, request.port) == ("10.0.0.7", 6699)
    assert [f.name for f in request.files] == [entries[i].name for i in (0, 3, 49)]
    assert request.files[1].sha256 == entries[3].sha256
    assert request.files[2].size == entries[49].size


def test_peers_pick_distinct_files_and_popular_ones_more_often() -> None:
    entries = catalog.make_catalog(300)
    picks = list(catalog.pick_files(entries, 200, 20))
    assert all(len(set(p)) == len(p) == 20 for p in picks)
    counts = [sum(i in p for p in picks) for i in (0, 299)]
    assert counts[0] > counts[1]
    assert len({catalog.peer_host(n) for n in range(70_000)}) == 70_000


def test_raw_tcp_baseline_delivers_the_exact_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the sender's log goes here
    source = make_random_file(tmp_path / "source.bin", 3 * MIB + 17)
    out = tmp_path / "out.bin"
    with running("raw TCP sender", apps.raw_serve(source)) as sender:
        subprocess.run(apps.raw_fetch(sender.address, out), cwd=ROOT, check=True, timeout=60)
    assert out.read_bytes() == source.read_bytes()


def test_load_generator_counts_answers_and_failures_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    good = tracker_pb2.SearchRequest(name="a.mp4").SerializeToString()
    bad = tracker_pb2.SearchRequest(name="a.mp4", query="both").SerializeToString()
    shape = {"processes": 1, "channels": 2, "concurrency": 2, "duration": 0.4, "warmup": 0.1}
    with running("tracker", apps.tracker()) as tracker:
        answered = loadgen.run_load(tracker.address, tracker_scale.SEARCH, [good], **shape)
        refused = loadgen.run_load(tracker.address, tracker_scale.SEARCH, [bad], **shape)
        unknown = loadgen.run_load(tracker.address, "/napshare.v1.Nope/Nope", [good], **shape)
    assert answered.calls > 0
    assert answered.errors == 0
    assert len(answered.latencies_us) == answered.calls
    assert refused.calls == 0
    assert refused.errors > 0
    assert unknown.calls == 0
    assert unknown.errors > 0


@pytest.mark.timeout(240)
def test_quick_bench_measures_every_section_and_writes_the_report(tmp_path: Path) -> None:
    repo_report = ROOT / "BENCHMARKS.md"
    before = repo_report.read_bytes() if repo_report.exists() else None
    out, rows_file = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench.run", "--quick", "--out", str(out)]
    command += ["--json", str(rows_file), "--workdir", str(tmp_path / "work")]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=230, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]

    sections = json.loads(rows_file.read_text())
    titles = [section["title"] for section in sections]
    assert [t.split(" (")[0] for t in titles] == [
        "Transfer speed",
        "Memory",
        "Tracker scale",
        "Tracker on Redis",
        "Transfer over latency",
        "Rate limits",
        "Big Joins and everyone else",
        "Poisoning",
        "Swarm rate",
        "Swarm memory",
        "Single source against 2bb7e67",
        "Relay throughput",
        "Reach over network namespaces",
    ]
    rows = {row["measure"]: row for section in sections for row in section["rows"]}
    for measure, row in rows.items():
        assert math.isfinite(row["value"]), measure
        assert row["status"] in {report.MET, report.MISSED, ""}, measure
        assert (row["status"] == "") == (row["target"] == ""), measure
        if row["unit"] in {"MB/s", "calls/s", "ms", "×"}:
            assert row["value"] > 0, measure
    transfer = rows["napshare download over TLS (end to end, every piece verified)"]["value"]
    whole = rows["napshare download over TLS --verify-sha256 (the whole file's sha256 too)"]
    assert rows["napshare TLS / napshare TLS --verify-sha256"]["value"] == pytest.approx(
        transfer / whole["value"]
    )
    assert rows["receiving client CPU per GiB (napshare TLS --verify-sha256)"]["value"] > 0
    plaintext = rows["napshare download --plaintext"]["value"]
    raw = rows["raw TCP: sendfile → recv_into → file"]["value"]
    assert rows["napshare TLS / raw TCP"]["value"] == pytest.approx(transfer / raw)
    assert rows["napshare TLS / --plaintext"]["value"] == pytest.approx(transfer / plaintext)
    assert rows["napshare TLS / --plaintext"]["target"] == "≥ 0.85×"
    assert rows["receiving client CPU per GiB (napshare TLS)"]["target"] == "≤ 1.5 s"
    assert rows["receiving client CPU per GiB (napshare TLS, issue 24)"]["target"] == "≤ 2.0 s"
    # The race's rows are there whenever their programs are (the quick run installs none).
    race = {
        "napshare TLS / curl (issue 12's floor)": ("curl",),
        "napshare TLS / curl + openssl + fsync": ("curl", "openssl"),
        "napshare TLS / curl + openssl + fsync (issue 24)": ("curl", "openssl"),
        "napshare TLS / aria2c HTTP": ("aria2c",),
        "napshare TLS / aria2c BitTorrent": ("aria2c",),
        "napshare TLS / aria2c BitTorrent (issue 24)": ("aria2c",),
        "napshare TLS / rsync daemon": ("rsync",),
    }
    for measure, programs in race.items():
        assert (measure in rows) == all(shutil.which(p) for p in programs), measure
    assert any(m.startswith("serving peer, peak RSS, 8 MiB") for m in rows)
    assert rows["tracker RSS per entry"]["target"] == "≤ 300 bytes"
    assert "search / echo" in rows
    assert rows["Redis memory per entry (used_memory)"]["target"] == "≤ 500 bytes"
    assert rows["search throughput, two replicas on one Redis"]["value"] > 0
    assert rows["store round trips per Heartbeat"]["value"] >= 1
    assert rows["downloader peak RSS through the proxy"]["target"] == "≤ 100 MiB"
    assert rows["napshare / curl, 5 ms one way (10 ms RTT)"]["value"] > 0
    assert rows["upload: achieved / cap"]["value"] > 0
    assert rows["download: achieved / cap"]["target"] == "0.90–1.10×"
    assert rows["wrong bytes in the last chunk: bytes fetched twice (worst round)"]["target"] == (
        "≤ 4 MiB"
    )
    assert rows["3 peers each capped at R: process start to exit"]["value"] > 0
    assert rows["3 capped peers / R (by its own lines)"]["value"] > 0
    assert rows["downloading client, 4 serving peers, peak RSS, 8 MiB"]["target"] == "< 100 MiB"
    assert rows["one source: current / 2bb7e67"]["value"] > 0
    assert rows["raw TCP: relayed / direct"]["value"] > 0
    assert rows["TLS Download: relayed / direct"]["value"] > 0
    # Namespaces need root; elsewhere the section says why it measured nothing.
    reach = next(s for s in sections if s["title"] == "Reach over network namespaces")
    if netns.missing() is None:
        assert rows["reverse / direct, same links"]["target"] == "≥ 0.80×"
        assert rows["relay, default caps, both peers behind routers (end to end)"]["value"] > 0
    else:
        assert reach["rows"] == []

    text = out.read_text()
    assert "cores" in text
    for section in sections:
        assert f"Every row below comes from `{section['reproduce']}`." in text
    assert "--quick --only transfer" in text
    assert "## What each idea gave" in text
    # The swarms' later peers took the first one's hash cache instead of hashing again.
    assert "the other 2, started from a copy of its hash cache" in text
    assert "2 of 2 logged no hashing" in text
    assert "3 of 3 logged no hashing" in text
    for measure in rows:
        assert measure in text
    assert result.stdout.count("|") > 3 * len(rows)
    assert (repo_report.read_bytes() if repo_report.exists() else None) == before


def _echo_once(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        while data := connection.recv(65536):
            connection.sendall(data)


@pytest.mark.timeout(60)
def test_delay_proxy_relays_both_directions_intact_and_in_order() -> None:
    sent = os.urandom(3 * MIB + 17)
    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        echo = threading.Thread(target=_echo_once, args=(listener,), daemon=True)
        echo.start()
        # A buffer far smaller than the data: each direction must stop reading and resume.
        proxy = delayproxy.DelayProxy(listener.getsockname()[:2], delay=0.002, buffer=64 * 1024)
        with proxy, socket.create_connection(_host_port(proxy.address), timeout=30) as client:

            def send_all_then_half_close() -> None:
                client.sendall(sent)
                client.shutdown(socket.SHUT_WR)

            writer = threading.Thread(target=send_all_then_half_close, daemon=True)
            writer.start()
            while data := client.recv(65536):
                received += data
            writer.join(30)
        echo.join(30)
    assert len(received) == len(sent)
    assert received == sent


def test_delay_proxy_relays_only_to_loopback() -> None:
    with pytest.raises(SystemExit):
        delayproxy.main(["192.0.2.1:80", "--delay-ms", "1"])


@pytest.mark.timeout(120)
def test_a_long_round_trip_gets_a_window_larger_than_a_few_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bytes in flight, not speed: with gRPC's default window about one 1 MiB chunk crossed
    # per round trip, so the proxy never held more than a few MiB on the way to the client.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    share, target = tmp_path / "share", tmp_path / "target"
    share.mkdir()
    target.mkdir()
    with (share / "long.bin").open("wb") as out:
        out.truncate(48 * MIB)
    with swarm.tracker() as tracker, swarm.serving_peer(share, tracker.address, "long.bin") as peer:
        host, port = _host_port(peer.address)
        with delayproxy.DelayProxy((host, port), delay=0.2, buffer=32 * MIB) as proxy:
            command = apps.download(
                "long.bin", target, tracker.address, [*apps.PLAINTEXT, "--from", proxy.address]
            )
            subprocess.run(command, cwd=ROOT, check=True, timeout=100, capture_output=True)
            in_flight = proxy.peak_held
    assert (target / "long.bin").stat().st_size == 48 * MIB
    assert in_flight > 8 * MIB, f"at most {in_flight} bytes in flight"


def test_the_window_follows_the_round_trip_within_bounds() -> None:
    assert fetch.window_for(0.0002) is None  # loopback keeps gRPC's default window
    assert fetch.window_for(0.05) == int(0.05 * fetch.WINDOW_RATE)
    assert fetch.window_for(10.0) == fetch.MAX_WINDOW
    assert fetch.window_for(10.0, streams=4) == fetch.MAX_WINDOW // 4  # one download's share
    assert fetch.window_for(10.0, streams=32) == fetch.MIN_WINDOW
    # Two streams of one source share what one would get: the client takes in no more.
    assert fetch.window_for(0.05, streams=2) == int(0.05 * fetch.WINDOW_RATE) // 2


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
