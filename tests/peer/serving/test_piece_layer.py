"""GetPieceLayer: the BEP 52 piece hashes of a shared file, and its errors with their reasons."""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from napshare.v1 import peer_pb2

from tests.support.peers import InProcessPeer

MIB = 1024 * 1024
BLOCK = 16 * 1024


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def piece_hash(piece: bytes) -> bytes:
    """A full-width (64-leaf) piece tree, padded with zero hashes, computed from hashlib."""
    layer = [sha(piece[i : i + BLOCK]) for i in range(0, len(piece), BLOCK)]
    layer += [bytes(32)] * (MIB // BLOCK - len(layer))
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def test_the_layer_is_one_bep52_hash_per_piece_and_matches_the_listed_root(
    tmp_path: Path, start_peer: Callable[..., InProcessPeer]
) -> None:
    data = os.urandom(3 * MIB + 100)
    (tmp_path / "f.bin").write_bytes(data)
    (tmp_path / "small").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    peer = start_peer(tmp_path)
    digest = hashlib.sha256(data).hexdigest()

    answer = peer.stub.GetPieceLayer(peer_pb2.GetPieceLayerRequest(name="f.bin", sha256=digest))

    pieces = [piece_hash(data[i : i + MIB]) for i in range(0, len(data), MIB)]
    assert answer.piece_size == MIB
    assert answer.hashes == b"".join(pieces)
    top = pieces + [_zero_piece()] * (4 - len(pieces))
    while len(top) > 1:
        top = [sha(top[i] + top[i + 1]) for i in range(0, len(top), 2)]
    first = next(iter(peer.stub.Download(peer_pb2.DownloadRequest(name="f.bin", limit=1))))
    assert first.file.pieces_root == top[0].hex()
    small = peer.stub.GetPieceLayer(peer_pb2.GetPieceLayerRequest(name="small"))
    assert small.hashes == sha(b"abc")
    assert peer.stub.GetPieceLayer(peer_pb2.GetPieceLayerRequest(name="empty")).hashes == b""


def _zero_piece() -> bytes:
    """The hash of a piece-sized subtree of zero leaf hashes: the root's padding."""
    node = bytes(32)
    for _ in range(6):
        node = sha(node + node)
    return node


CASES = {
    "not shared": ({"name": "absent"}, grpc.StatusCode.NOT_FOUND, "FILE_NOT_SHARED"),
    "bad name": ({"name": "../x"}, grpc.StatusCode.INVALID_ARGUMENT, "NAME_INVALID"),
    "bad sha256": (
        {"name": "small", "sha256": "xyz"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "SHA256_INVALID",
    ),
    "other sha256": (
        {"name": "small", "sha256": "a" * 64},
        grpc.StatusCode.FAILED_PRECONDITION,
        "FILE_CHANGED",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_errors_carry_their_reason(
    case: str,
    tmp_path: Path,
    start_peer: Callable[..., InProcessPeer],
    rpc_details: Callable[..., tuple],
) -> None:
    (tmp_path / "small").write_bytes(b"abc")
    peer = start_peer(tmp_path)
    fields, code, reason = CASES[case]

    with pytest.raises(grpc.RpcError) as caught:
        peer.stub.GetPieceLayer(peer_pb2.GetPieceLayerRequest(**fields))

    assert caught.value.code() == code
    assert rpc_details(caught.value)[0].reason == reason


def test_bytes_that_are_no_request_get_request_malformed(
    tmp_path: Path, start_peer: Callable[..., InProcessPeer], rpc_details: Callable[..., tuple]
) -> None:
    peer = start_peer(tmp_path)
    call = peer.channel.unary_unary("/napshare.v1.PeerService/GetPieceLayer")

    with pytest.raises(grpc.RpcError) as caught:
        call(b"\xff\xff\xff")

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(caught.value)[0].reason == "REQUEST_MALFORMED"
