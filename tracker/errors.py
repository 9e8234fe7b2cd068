"""What can go wrong in the tracker's domain, as exceptions that know nothing of gRPC."""


class TrackerError(Exception):
    """Base of every error the tracker reports to a caller."""


class InvalidRequestError(TrackerError):
    """Malformed input: a bad name, digest, size, address, search or file list."""


class UnauthenticatedError(TrackerError):
    """The token does not match the peer id."""


class UnknownPeerError(TrackerError):
    """No registration for that peer id: never joined, left, or its lease ran out."""


class CapacityError(TrackerError):
    """A registration would grow past the tracker's size limits."""
