"""`python -m napshare.tracker` as a user runs it: console lines in both languages, flags."""

import signal
import subprocess
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.exitcodes import ExitCode
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

LINES = {
    "C.UTF-8": (
        "Peer 127.0.0.1:8776 added with files aula1.mp4 aula2.mp4",
        "Peer 127.0.0.1:8776 requested file aula1.mp4",
        "Peer 127.0.0.1:8776 dead. Removing its files aula1.mp4 aula2.mp4",
    ),
    "pt_BR.UTF-8": (
        "Peer 127.0.0.1:8776 adicionado com arquivos aula1.mp4 aula2.mp4",
        "Peer 127.0.0.1:8776 solicitou arquivo aula1.mp4",
        "Peer 127.0.0.1:8776 morto. Eliminando seus arquivos aula1.mp4 aula2.mp4",
    ),
}


@pytest.mark.parametrize("lang", LINES)
def test_console_lines_in_both_languages(spawn_tracker, info, lang):
    joined, searched, dead = LINES[lang]
    tracker = spawn_tracker("--heartbeat-interval", "0.3", lang=lang)

    with grpc.insecure_channel(tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        stub.Join(
            tracker_pb2.JoinRequest(
                host="127.0.0.1", port=8776, files=[info("aula1.mp4"), info("aula2.mp4")]
            )
        )
        assert tracker.next_line() == joined
        stub.Search(tracker_pb2.SearchRequest(name="aula1.mp4", peer_id="127.0.0.1:8776"))
        # Nobody heartbeats, so the lease runs out 0.9 s after the Join: maybe before the search.
        assert {tracker.next_line(), tracker.next_line()} == {searched, dead}
        stub.Search(tracker_pb2.SearchRequest(query="aula  MP4"))
        line = tracker.next_line()
    assert line.startswith("Peer 127.0.0.1:")  # the caller's address when it gives no peer_id
    assert line.endswith(" aula MP4")
    assert tracker.stop() == 0


@pytest.mark.parametrize(
    ("lang", "banner"),
    [
        ("C.UTF-8", "napshare tracker listening on {address}"),
        ("pt_BR.UTF-8", "tracker napshare escutando em {address}"),
    ],
)
def test_the_listening_line_follows_the_locale(spawn_tracker, lang, banner):
    tracker = spawn_tracker(lang=lang)

    assert tracker.banner == banner.format(address=tracker.address)
    assert tracker.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_tracker_with_status_0(spawn_tracker, sig):
    tracker = spawn_tracker()

    status = tracker.stop(sig)

    assert status == 0
    assert not any("Traceback" in line for line in tracker.stderr)


def test_a_taken_port_is_one_line_and_a_failure(spawn_tracker, python, tmp_path):
    first = spawn_tracker()

    second = subprocess.run(
        [
            python,
            "-m",
            "napshare.tracker",
            "--host",
            "127.0.0.1",
            "--port",
            str(first.port),
            "--plaintext",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert second.returncode == ExitCode.PORT_IN_USE == 9  # as napshare-peer
    problem = second.stderr.strip().splitlines()
    assert len(problem) == 1, second.stderr
    assert str(first.port) in problem[0]
    assert "in use" in problem[0]
    assert second.stdout == ""


@pytest.mark.parametrize(
    ("flags", "word"),
    [
        (["--port", "http"], "port"),
        (["--port", "70000"], "port"),
        (["--heartbeat-interval", "0"], "interval"),
        (["--heartbeat-interval", "nan"], "interval"),
        (["--log-level", "loud"], "log-level"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_a_bad_flag_is_one_line_and_a_failure(python, tmp_path, flags, word):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert word in lines[0]


def test_help_lists_every_flag(python, tmp_path):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    for flag in ("--host", "--port", "--heartbeat-interval", "--log-level"):
        assert flag in done.stdout


def test_help_lists_the_exit_codes_from_the_table(python, tmp_path):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    listed = done.stdout.split("exit codes:\n", 1)[1]
    for code in (ExitCode.OK, ExitCode.USAGE, ExitCode.PORT_IN_USE):
        assert f"  {code.value:<4} {code.description}\n" in listed
    assert f"  {ExitCode.NOT_FOUND.value:<4} " not in listed  # a code only the peer exits with


def test_shutdown_turns_health_not_serving_before_the_server_stops():
    from grpc_health.v1.health import HealthServicer
    from napshare.common.serving import stop_gracefully

    health = HealthServicer()
    server, port = create_server(TrackerIndex(), host="127.0.0.1", port=0, health=health)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="napshare.v1.TrackerService"), timeout=30
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stopping = threading.Thread(target=stop_gracefully, args=(server, health, 0.5))
        stopping.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stopping.join()
