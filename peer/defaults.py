"""Default settings, shared by the command line and the code it runs (nothing here loads gRPC)."""

from napshare.common.protocol import HEARTBEAT_INTERVAL, TRACKER_PORT

DEFAULT_TRACKER = f"127.0.0.1:{TRACKER_PORT}"
RESCAN_INTERVAL = 5.0  # seconds between looks for new files in a served folder
STALL_TIMEOUT = 30.0  # seconds without data before another peer is asked
GIVE_UP_AFTER = 120.0  # seconds in which no peer sent a byte before a download fails
MAX_SOURCES = 4  # peers one download draws pieces from at once (--max-sources)
MOST_SOURCES = 32  # the most --max-sources allows
SOURCES_REFRESH = 30.0  # seconds between searches for more peers while a download has room
# Streams one download opens to one peer at most, each on a connection of its own (a peer
# allows UPLOADS_PER_ADDRESS); the second only while SECOND_STREAM_MIN bytes or more are left:
# it costs a connection, round trips, and what the first stream had in flight past its new
# end, for a gain only on a download of a second or more at the speed of one stream.
STREAMS_PER_PEER = 2
SECOND_STREAM_MIN = 256 * 1024 * 1024
MAX_UPLOADS = 4
# Bytes of file per Download chunk a peer sends (serve --chunk-size): 1 MiB cost the least CPU
# on both ends (tests/bench/NOTES.md, "chunk size").
MIN_CHUNK_SIZE = 16 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 2 * 1024 * 1024
UPLOAD_STALL_TIMEOUT = 60.0  # seconds a downloader may take no chunk before its slot is freed
UPLOADS_PER_ADDRESS = 2  # upload slots one client IP may hold at once
# Connections a serving peer's server holds at once (serve --max-connections), within its open
# files, and from one address (--max-connections-per-address): a downloader opens up to
# STREAMS_PER_PEER a download, a few downloads at once; the tracker's address check one.
MAX_CONNECTIONS = 1_024
MAX_CONNECTIONS_PER_ADDRESS = 16
# Downloads that wait for an upload slot in a serving peer's queue (serve --max-queued), and
# from one client IP (--max-queued-per-address); each holds one of the server's threads.
MAX_QUEUED = 32
QUEUED_PER_ADDRESS = 4
# A slot read at less than MIN_UPLOAD_RATE KiB/s over the last UPLOAD_RATE_WINDOW seconds,
# counted from UPLOAD_GRACE seconds after it was taken, is reclaimed. A slow WAN (1 MB/s) is
# 16 times this rate; the grace covers the connection's start and its buffers filling.
MIN_UPLOAD_RATE = 64.0
UPLOAD_RATE_WINDOW = 30.0
UPLOAD_GRACE = 10.0
# Seconds an upload slot stays held for the client whose stream of a file sent all it asked
# for (serve --upload-slot-hold): a download that fetches a file in several calls (a stream
# that ended its range takes the rest of another's; a client fetching in ranges) comes back
# within a round trip or two, and must not lose its slot to the queue between them. A download
# that has ended costs the queue this long once.
UPLOAD_SLOT_HOLD = 3.0
SEARCH_LIMIT = 1_000  # results `napshare-peer search` prints unless --limit says otherwise
# A search stops at MAX_RESULTS results whatever the tracker says, so that a hostile tracker
# cannot make a client grow forever (--limit 0 means this many); and it stops asking for more
# pages after SEARCH_TIME seconds, so that one answering empty pages slowly cannot hold it.
MAX_RESULTS = 100_000
SEARCH_TIME = 60.0
# The largest file a download takes (--max-file-size): a listing of a larger one is refused
# before anything is allocated for it. Memory does not grow with it (pieces over 4 MiB are
# assembled on disk: peer.downloading.fetch.PIECE_BUFFER); disk does, by three pieces per
# stream (64 MiB pieces for 1 TiB), and so do the hashes of one piece (about 1/160,000 of it).
MAX_FILE_SIZE = 1 << 40
# A download that finds nothing while the tracker says it is gathering (it started less than
# a lease ago, so peers may be re-joining) searches again for up to this many seconds: one
# heartbeat interval, in which every peer still alive has heartbeated and so re-joined.
WAIT_FOR_PEERS = HEARTBEAT_INTERVAL
GATHERING_POLL = 1.0  # seconds between searches while waiting for peers to re-join
DOWNLOAD_BACKOFF_CAP = 8.0  # the longest wait before asking the peers of a download again
TRACKER_RETRY_CAP = 10.0  # the longest wait before trying to join an unreachable tracker again
# Reaching a peer the tracker could not reach (peer.reach): how long each path may take.
DIRECT_PROBE = 3.0  # seconds for a TCP connection to a peer's listed address
LOCAL_PROBE = 2.0  # seconds for one to a local address (peers behind the same NAT)
REVERSE_WAIT = 5.0  # seconds for a peer's reverse dial to arrive and prove itself
RELAY_WAIT = 10.0  # seconds to pair at a relay (the relay's own pairing timeout)
# Connections a serving peer dials out for downloaders (reverse, or to a relay) open at once,
# in the handshake or carrying calls (serve --max-dialbacks), and dials a second it starts
# (--dialback-rate); requests past either are dropped.
MAX_DIALBACKS = 32
DIALBACK_RATE = 10.0
