"""What the flags `serve`, `search` and `download` share mean: the transport (TLS or plain
text, which tracker certificate to trust) and the download options.
"""

import argparse
from pathlib import Path
from typing import Any

from napshare.peer.downloading.engine import DownloadOptions
from napshare.peer.transport import Transport, known_trackers_file, read_tracker_cert


def transport(args: argparse.Namespace, root: Path | None) -> Transport:
    """What the flags say about TLS; first-seen tracker certificates kept under `root`."""
    if args.plaintext:
        return Transport(plaintext=True)
    return Transport(
        plaintext=False,
        tracker_cert=None if args.tracker_cert is None else read_tracker_cert(args.tracker_cert),
        tracker_fingerprint=args.tracker_fingerprint,
        known_trackers=None if root is None else known_trackers_file(root),
    )


def download_options(args: argparse.Namespace, **extra: Any) -> DownloadOptions:
    """The download flags `serve` and `download` share, plus `extra` fields."""
    return DownloadOptions(
        stall_timeout=args.stall_timeout,
        give_up_after=args.give_up_after,
        wait_for_peers=args.wait_for_peers,
        max_sources=args.max_sources,
        max_file_size=args.max_file_size,
        **extra,
    )
