"""Fixtures every test folder may use."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="napshare-hypothesis-")
)


@pytest.fixture
def python() -> str:
    """The interpreter of this venv, for starting napshare processes."""
    return sys.executable


def _rpc_details(error):
    """The ErrorInfo (domain napshare.v1) and RetryInfo or None in a failed call's status."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    assert status.code == error.code().value[0]
    infos, retries = [], []
    for detail in status.details:
        for kind, found in (
            (error_details_pb2.ErrorInfo, infos),
            (error_details_pb2.RetryInfo, retries),
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found.append(message)
    assert len(infos) == 1
    assert len(retries) <= 1
    assert infos[0].domain == "napshare.v1"
    return infos[0], (retries[0] if retries else None)


@pytest.fixture
def rpc_details():
    """rpc_details(error) -> (ErrorInfo, RetryInfo | None), checking there is one ErrorInfo."""
    return _rpc_details
