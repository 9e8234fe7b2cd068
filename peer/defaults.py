"""Default settings, shared by the command line and the code it runs (nothing here loads gRPC)."""

from napshare.common.protocol import TRACKER_PORT

DEFAULT_TRACKER = f"127.0.0.1:{TRACKER_PORT}"
RESCAN_INTERVAL = 5.0  # seconds between looks for new files in a served folder
STALL_TIMEOUT = 30.0  # seconds without data before another peer is asked
GIVE_UP_AFTER = 120.0  # seconds in which no peer sent a byte before a download fails
MAX_UPLOADS = 4
UPLOAD_STALL_TIMEOUT = 60.0  # seconds a downloader may take no chunk before its slot is freed
DOWNLOAD_BACKOFF_CAP = 8.0  # the longest wait before asking the peers of a download again
TRACKER_RETRY_CAP = 10.0  # the longest wait before trying to join an unreachable tracker again
