"""Defaults that tracker and peer must agree on: the tracker's port and the heartbeat interval."""

TRACKER_PORT = 1099  # the original assignment's port
HEARTBEAT_INTERVAL = 30.0  # seconds between a peer's heartbeats
LEASE_INTERVALS = 3  # a peer silent for this many heartbeat intervals is dropped
MAX_PAGE_SIZE = 1_000  # the most Search results in one answer (page_size above it is lowered)
