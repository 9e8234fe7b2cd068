"""The tracker runs a relay beside it by default, trusting its own certificate, and stops it."""

import argparse
import socket
import subprocess
import threading
import urllib.request

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import (
    PEER_NAME,
    certificates_in,
    fingerprint,
    identity_from_pem,
    make_identity,
)
from napshare.common.relay_wire import RelayRefusedError, hello, join_relay, relay_target
from napshare.common.tls import pinned_channel
from napshare.tracker.relaying import add_relay_flags, relay_port
from napshare.v1 import file_info_pb2, relay_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.reach import ListenStream, signed_join
from tests.support.relays import (
    DOWNLOADING,
    SERVING,
    RunningRelay,
    new_session,
    read_all,
    ticket,
)

RELAY_LINE = "relay listening on 127.0.0.1:"


def _own_relay(tracker) -> tuple[str, int]:
    line = tracker.next_line()
    assert line.startswith(RELAY_LINE), line
    return "127.0.0.1", int(line.removeprefix(RELAY_LINE))


def test_a_tls_tracker_runs_a_relay_that_takes_its_tickets_and_stops_with_it(
    spawn_tracker, tmp_path
) -> None:
    tracker = spawn_tracker(tls=True)
    address = _own_relay(tracker)
    identity_dir = tmp_path / "tracker-state" / "identity"
    tracker_identity = identity_from_pem(
        (identity_dir / "key.pem").read_bytes(), (identity_dir / "cert.pem").read_bytes()
    )
    relay = RunningRelay(None, address)  # type: ignore[arg-type]
    session = new_session()

    with pytest.raises(RelayRefusedError) as caught:  # the test's own tracker: not trusted
        relay.join(ticket(new_session(), SERVING))
    assert caught.value.answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    with socket.create_connection(address) as early:
        early.sendall(hello(ticket(session, SERVING, signer=tracker_identity)))
        with relay.join(ticket(session, DOWNLOADING, signer=tracker_identity)) as downloading:
            early.recv(64)  # its PAIRED answer
            early.sendall(b"through the tracker's relay")
            early.shutdown(socket.SHUT_WR)
            assert read_all(downloading) == b"through the tracker's relay"

        assert tracker.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)


def test_the_relay_port_is_the_trackers_plus_one_unless_set() -> None:
    parser = argparse.ArgumentParser()
    add_relay_flags(parser)

    assert relay_port(parser.parse_args([]), 1099) == 1100
    assert relay_port(parser.parse_args([]), 0) == 0  # a free one beside a free one
    assert relay_port(parser.parse_args([]), 65535) == 0
    assert relay_port(parser.parse_args(["--relay-port", "4000"]), 1099) == 4000
    assert relay_port(parser.parse_args(["--relay-port", "0"]), 1099) == 0


def test_no_relay_runs_none_and_another_relay_is_handed_out_instead(spawn_tracker) -> None:
    none = spawn_tracker("--no-relay", "--metrics-port", "0", tls=True)
    assert none.next_line().startswith("metrics on ")  # no relay line before it
    assert none.stop() == 0

    other = spawn_tracker("--relay", "198.51.100.9:1100", tls=True)
    assert other.next_line() == "handing out the relay at 198.51.100.9:1100"
    assert other.stop() == 0


def test_a_plain_text_tracker_runs_no_relay(spawn_tracker) -> None:
    plain = spawn_tracker("--metrics-port", "0")

    assert plain.next_line().startswith("metrics on ")
    assert plain.stop() == 0


@pytest.mark.parametrize("flags", [["--relay", "198.51.100.9:1100"], ["--relay-port", "0"]])
def test_relay_flags_on_a_plain_text_tracker_are_a_usage_error(python, flags) -> None:
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--plaintext", "--port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == ExitCode.USAGE
    assert "no key to sign relay tickets" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_taken_relay_port_is_one_line_naming_the_relay_and_exit_9(python, tmp_path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(python, "-m", "napshare.tracker", "--host", "127.0.0.1", "--port", "0"),
                *("--state-dir", str(tmp_path / "state"), "--relay-port", str(port)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert done.returncode == ExitCode.PORT_IN_USE
    assert done.stderr == (
        f"napshare-tracker: the tracker's relay: cannot listen on 127.0.0.1:{port}: the port "
        "is in use or the address is not local; choose another with --relay-port, or run "
        "none with --no-relay\n"
    )


def test_the_trackers_metrics_count_its_relays_sessions(spawn_tracker) -> None:
    tracker = spawn_tracker("--metrics-port", "0", tls=True)
    _own_relay(tracker)
    url = tracker.next_line().removeprefix("metrics on ")

    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()

    assert "napshare_tracker_relay_sessions_paired 0.0" in text
    assert "napshare_tracker_relay_bytes_total 0.0" in text
    assert tracker.stop() == 0


def test_connect_hands_out_the_trackers_own_relay_and_both_sides_meet_there(
    spawn_tracker, tmp_path
) -> None:
    tracker = spawn_tracker(tls=True)
    relay_port = _own_relay(tracker)[1]
    cert_pem = (tmp_path / "tracker-state" / "identity" / "cert.pem").read_bytes()
    tracker_id = fingerprint(certificates_in(cert_pem)[0])
    peer = make_identity(PEER_NAME)
    with socket.create_server(("127.0.0.1", 0)) as nothing:  # the port of a peer not reached
        port = nothing.getsockname()[1]
    info = file_info_pb2.FileInfo(name="a.mp4", size=1, sha256="ab" * 32)
    with pinned_channel(tracker.address, cert_pem) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        joined = stub.Join(signed_join(peer, port, info, tracker=tracker_id), timeout=30)
        assert not joined.reachable
        stream = ListenStream(stub, joined.peer_id, joined.token)
        try:
            assert stream.event().WhichOneof("event") == "started"
            answer = stub.Connect(
                tracker_pb2.ConnectRequest(
                    peer_id=joined.peer_id, path=tracker_pb2.CONNECT_PATH_RELAY
                ),
                timeout=10,
            )
            told = stream.event().relay_session
        finally:
            stream.cancel()

    assert answer.relay_address == told.relay_address == f":{relay_port}"
    address = relay_target(answer.relay_address, "127.0.0.1")
    serving: list[socket.socket] = []
    thread = threading.Thread(
        target=lambda: serving.append(join_relay(address, told.relay_ticket, 10)[0])
    )
    thread.start()
    downloading, _ = join_relay(address, answer.relay_ticket, 10)
    thread.join(10)
    with downloading, serving[0]:
        serving[0].sendall(b"met at the tracker's relay")
        serving[0].shutdown(socket.SHUT_WR)
        assert read_all(downloading) == b"met at the tracker's relay"
    assert tracker.stop() == 0
