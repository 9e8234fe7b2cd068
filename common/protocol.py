"""What tracker, peer and relay must agree on: service names, ports, the heartbeat."""

from types import ModuleType

from napshare.v1 import peer_pb2, tracker_pb2

TRACKER_PORT = 1099  # the original assignment's port
RELAY_PORT = TRACKER_PORT + 1  # napshare-relay's; a tracker's own relay takes its port + 1
HEARTBEAT_INTERVAL = 30.0  # seconds between a peer's heartbeats
LEASE_INTERVALS = 3  # a peer silent for this many heartbeat intervals is dropped
MAX_PAGE_SIZE = 1_000  # the most Search results in one answer (page_size above it is lowered)
MAX_LOCAL_ADDRESSES = 8  # the most local addresses one Join may list


def _service(module: ModuleType, name: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


TRACKER_SERVICE = _service(tracker_pb2, "TrackerService")  # "napshare.v1.TrackerService"
PEER_SERVICE = _service(peer_pb2, "PeerService")  # "napshare.v1.PeerService"
