"""What a benchmark run measures and with which sizes: full, or tiny for the smoke test."""

from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.files import GIB, MIB, format_size

RUNNER = ".venv/bin/python -m tests.bench.run"
REACH_MAX_ROUNDS = 5  # a reach round is three 1 GiB downloads through namespaces


def _size_flag(size: int) -> str:
    return format_size(size).replace(" ", "")


@dataclass
class Config:
    """Every knob of a run; the defaults are the full `make bench`."""

    workdir: Path
    quick: bool = False
    transfer_size: int = GIB
    rounds: int = 7
    memory_sizes: list[int] = field(default_factory=lambda: [GIB, 4 * GIB])
    peers: int = 10_000
    files_per_peer: int = 100
    distinct: int = 200_000
    join_files: int = 10_000
    join_repeats: int = 5
    keyword_queries: int = 1000
    search_pool: int = 50_000
    load_rounds: int = 5
    load_seconds: float = 4.0
    warmup_seconds: float = 1.5
    load_processes: int = 1
    load_channels: int = 4
    load_concurrency: int = 4
    echo_workers: int = 16
    latency_size: int = GIB
    latency_delays_ms: list[float] = field(default_factory=lambda: [0.0, 5.0, 25.0, 50.0])
    latency_buffer: int = 8 * MIB
    rate_cap: int = 30 * MIB
    rate_seconds: float = 10.0
    swarm_rate: int = 30 * MIB
    baseline: str = "2bb7e67"  # the last commit before the swarm engine (issue 10)
    serve_args: list[str] = field(default_factory=list)
    download_args: list[str] = field(default_factory=list)

    @classmethod
    def tiny(cls, workdir: Path) -> "Config":
        """Sizes small enough for the smoke test: every code path, seconds in all."""
        return cls(
            workdir=workdir,
            quick=True,
            transfer_size=4 * MIB,
            rounds=1,
            memory_sizes=[4 * MIB, 8 * MIB],
            peers=40,
            files_per_peer=20,
            distinct=400,
            join_files=300,
            join_repeats=2,
            keyword_queries=30,
            search_pool=200,
            load_rounds=1,
            load_seconds=0.5,
            warmup_seconds=0.2,
            load_channels=1,
            load_concurrency=2,
            echo_workers=4,
            latency_size=2 * MIB,
            latency_delays_ms=[0.0, 5.0],
            rate_cap=8 * MIB,
            rate_seconds=1.5,
            swarm_rate=16 * MIB,
        )

    def reproduce(self, only: str) -> str:
        """The command that measures section `only` again with these sizes."""
        if self.quick:
            return f"{RUNNER} --quick --only {only}"
        flags = {
            "transfer": f"--size {_size_flag(self.transfer_size)} --rounds {self.rounds}",
            "poisoning": f"--size {_size_flag(self.transfer_size)} --rounds {min(self.rounds, 3)}",
            "memory": "--memory-sizes " + ",".join(_size_flag(s) for s in self.memory_sizes),
            "tracker": f"--peers {self.peers} --files-per-peer {self.files_per_peer}",
            "tracker-redis": f"--peers {self.peers} --files-per-peer {self.files_per_peer}",
            "latency": f"--latency-size {_size_flag(self.latency_size)} --rounds {self.rounds} "
            "--latency-delays "
            + ",".join(f"{d:g}" for d in self.latency_delays_ms)
            + f" --latency-buffer {_size_flag(self.latency_buffer)}",
            "ratelimit": f"--rate-cap {_size_flag(self.rate_cap)} "
            f"--rate-seconds {self.rate_seconds:g}",
            "swarm-rate": f"--size {_size_flag(self.transfer_size)} "
            f"--swarm-rate {_size_flag(self.swarm_rate)}",
            "swarm-memory": "--memory-sizes " + ",".join(_size_flag(s) for s in self.memory_sizes),
            "single-source": f"--size {_size_flag(self.transfer_size)} --rounds {self.rounds} "
            f"--baseline {self.baseline}",
            "relay": f"--size {_size_flag(self.transfer_size)} --rounds {self.rounds}",
            "reach": f"--size {_size_flag(self.transfer_size)} "
            f"--rounds {min(self.rounds, REACH_MAX_ROUNDS)}",
            "big-joins": "",  # its sizes are its own (tests/bench/big_joins.py)
        }[only]
        extra = ""
        if only in ("transfer", "memory", "latency", "poisoning", "swarm-rate", "swarm-memory"):
            extra += "".join(f" --serve-arg={a}" for a in self.serve_args)
            extra += "".join(f" --download-arg={a}" for a in self.download_args)
        return f"{RUNNER} --only {only} {flags}{extra}".rstrip()
