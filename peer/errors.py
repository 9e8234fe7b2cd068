"""What can go wrong on the client side, and the one place that maps gRPC status codes to it."""

import enum

import grpc


class ClientError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class TrackerUnreachableError(ClientError):
    """The tracker did not answer."""

    exit_code = 6


class TrackerRejectedError(ClientError):
    """The tracker answered with an error about the request itself."""

    exit_code = 1


class LeaseLostError(ClientError):
    """The tracker no longer knows this peer (it restarted, or the lease ran out): Join again."""

    exit_code = 1


class NotFoundError(ClientError):
    """No peer shares the file."""

    exit_code = 3


class NoPeerReachableError(ClientError):
    """Peers share the file, but none of them delivered it in time."""

    exit_code = 4


class VerificationFailedError(ClientError):
    """Every source's bytes failed the sha256 check."""

    exit_code = 5


class FolderProblemError(ClientError):
    """The target folder is missing, unusable, or holds something in the way."""

    exit_code = 7


class AlreadyExistsError(ClientError):
    """The complete file is already in the folder and `--force` was not given."""

    exit_code = 8


class CancelledError(ClientError):
    """The download was asked to stop; its .part stays for a later resume."""

    exit_code = 130


class PeerFault(enum.Enum):
    """Why one stream from one peer stopped, which decides what the download does next."""

    REFUSED = "refused"  # busy: try the next peer, come back later
    GONE = "gone"  # unreachable or died: try the next peer, come back later
    STALLED = "stalled"  # no data for too long: as GONE
    CHANGED = "changed"  # its file is not the one we are fetching: drop it for this file
    MISSING = "missing"  # it does not share the file (any more): drop it for this file
    BROKEN = "broken"  # it broke the protocol: never use it again for this file


class PeerError(Exception):
    """One stream from one peer failed; `fault` says how."""

    def __init__(self, peer: str, fault: PeerFault, detail: str) -> None:
        super().__init__(f"peer {peer} {fault.value}: {detail}")
        self.peer = peer
        self.fault = fault
        self.detail = detail


_PEER_FAULTS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: PeerFault.REFUSED,
    grpc.StatusCode.UNAVAILABLE: PeerFault.GONE,
    grpc.StatusCode.DEADLINE_EXCEEDED: PeerFault.GONE,
    grpc.StatusCode.CANCELLED: PeerFault.GONE,
    grpc.StatusCode.ABORTED: PeerFault.GONE,
    grpc.StatusCode.INTERNAL: PeerFault.GONE,
    grpc.StatusCode.UNKNOWN: PeerFault.GONE,
    grpc.StatusCode.FAILED_PRECONDITION: PeerFault.CHANGED,
    grpc.StatusCode.NOT_FOUND: PeerFault.MISSING,
}


def _details(error: grpc.RpcError) -> str:
    if isinstance(error, grpc.Call):
        return str(error.details() or error.code().name)
    return str(error)


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    if isinstance(error, grpc.Call):
        return error.code()
    return grpc.StatusCode.UNKNOWN


def peer_failure(peer: str, error: grpc.RpcError) -> PeerError:
    """The PeerError that a Download call's error means."""
    fault = _PEER_FAULTS.get(_code(error), PeerFault.BROKEN)
    return PeerError(peer, fault, _details(error))


def tracker_error(tracker: str, error: grpc.RpcError) -> ClientError:
    """The ClientError that a tracker call's error means."""
    code = _code(error)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return TrackerUnreachableError(f"tracker {tracker} is unreachable ({_details(error)})")
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
        return LeaseLostError(f"tracker {tracker} no longer knows this peer: {_details(error)}")
    return TrackerRejectedError(f"tracker {tracker} refused the request: {_details(error)}")
