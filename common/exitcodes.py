"""The exit codes of napshare-tracker and napshare-peer: one table, and --help made from it."""

from collections.abc import Iterable, Mapping
from enum import IntEnum

from napshare.common.console import N_, tr


class ExitCode(IntEnum):
    """What a napshare program's exit status means; `description` is its line in --help.

    The descriptions are marked for the catalog; `epilog` translates them.
    """

    description: str

    def __new__(cls, value: int, description: str) -> "ExitCode":
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    OK = 0, N_("success")
    OTHER = 1, N_("any other error, such as a refused request or an internal error")
    USAGE = 2, N_("bad arguments: a malformed address, file name or option")
    NOT_FOUND = 3, N_("not found: no peer shares the file")
    NO_PEER_REACHABLE = (
        4,
        N_("no peer reachable: peers share it but none sent it in time (the .part is kept)"),
    )
    VERIFICATION_FAILED = 5, N_("verification failed: every source's bytes failed the sha256 check")
    TRACKER_UNREACHABLE = 6, N_("the tracker is unreachable")
    FOLDER = 7, N_("the folder is missing or unusable")
    EXISTS = 8, N_("the file is already in the folder (use --force)")
    PORT_IN_USE = 9, N_("the port is in use, or the address to listen on is not local")
    DOWNLOAD_IN_PROGRESS = (
        10,
        N_("another process is already downloading that file into that folder"),
    )
    DISK_FULL = (
        11,
        N_("the disk is full: free some space and run the same download again to resume it"),
    )
    TRACKER_IDENTITY = (
        12,
        N_(
            "the tracker's certificate is not the one pinned (--tracker-cert, "
            "--tracker-fingerprint, or the one first seen), or it serves no TLS"
        ),
    )
    PEER_IDENTITY = (
        13,
        N_("the peers answering are not the ones the tracker lists (another certificate)"),
    )
    IDENTITY_FILES = (
        14,
        N_("this program's identity files (key.pem, cert.pem) are unreadable or corrupt"),
    )
    STORE_UNAVAILABLE = (
        15,
        N_("the tracker's index store (--store) is unreachable or unusable"),
    )
    INTERRUPTED = 130, N_("interrupted (Ctrl-C); run the same download again to resume it")


def epilog(codes: Iterable[ExitCode] = ExitCode, said: Mapping[ExitCode, str] | None = None) -> str:
    """The `exit codes:` section of --help, one line per code (use RawDescriptionHelpFormatter);
    `said` words a code for one program (marked for the catalog), in place of its description.
    """
    own = said or {}
    lines = [f"  {code.value:<4} {tr(own.get(code, code.description))}" for code in codes]
    return "\n".join([tr("exit codes:"), *lines]) + "\n"
