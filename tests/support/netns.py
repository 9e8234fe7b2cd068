"""A small internet on one Linux machine, made of network namespaces: public hosts on a bridge,
home routers that masquerade a LAN of their own and drop every connection from outside, and
programs run in any host; the multi-host suite (tests/system) and the reach bench stand on it.

    with Internet(tmp_path) as internet:
        tracker = internet.public_host("tracker")             # 203.0.113.10
        home = internet.home_router("home")                   # WAN 203.0.113.101, LAN 192.0.2.0/24
        alice = home.lan_host("alice")                        # 192.0.2.10, routed via 192.0.2.1
        tracker.listen(80)                                    # a plain TCP server
        alice.connect(tracker.address, 80)                    # "connected"
        tracker.connect(home.wan_address, 8776)               # "refused": nothing forwarded
        tracker.start([napshare_tracker, ...], name="tracker")  # a program in a host

Each namespace is named `napshare-netns-<pid>-<n>-<host>`: the pid of the process that made it
(two pytest-xdist workers never collide) and a counter (two internets of one process neither).
Interfaces are made directly inside their namespaces (`ip link add ... netns`), never in the
machine's own, so their short names (`eth0`, `wan`, `lan`, `port3`) cannot collide with anything.
`close()` stops every program started here and deletes every namespace (their interfaces go with
them); the next `Internet` of any run deletes what a run that died (SIGKILL, a pulled plug) left.

Needs root and the programs `ip` (iproute2), `nft` (nftables) and `tcpdump`: `missing()` says
what is not there, in one line.
"""

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PUBLIC_PREFIX = "203.0.113"  # TEST-NET-3: the internet's addresses
LAN_PREFIXES = ("192.0.2", "198.51.100")  # TEST-NET-1 and -2: one LAN per home router
FIRST_PUBLIC_HOST = 10  # public hosts are 203.0.113.10, .11, ...
FIRST_ROUTER_WAN = 101  # routers' WAN addresses are 203.0.113.101, .102, ...
FIRST_LAN_HOST = 10  # a LAN's hosts are .10, .11, ...; its router is .1
NAMESPACE_PREFIX = "napshare-netns-"
_OURS = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)-\d+-")
_COUNTER = itertools.count(1)
TCPPROBE = Path(__file__).with_name("tcpprobe.py")
TOOLS = {"ip": "iproute2", "nft": "nftables", "tcpdump": "tcpdump"}
CAPTURE_BUFFER_KIB = 64 * 1024
# root's programs are in sbin, which a user's PATH may lack
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class NetnsError(RuntimeError):
    """A command that builds or runs the topology failed."""


def tool(name: str) -> str | None:
    """The path of `ip`, `nft` or `tcpdump`, or None."""
    return shutil.which(name, path=_SEARCH_PATH)


def missing() -> str | None:
    """Why this machine cannot build the namespaces, in one line; None when it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the suite as root)"
    absent = [name for name in TOOLS if tool(name) is None]
    if absent:
        packages = " ".join(TOOLS[name] for name in absent)
        return f"{', '.join(absent)} not installed (apt-get install {packages}; make test does)"
    probe = f"{NAMESPACE_PREFIX}{os.getpid()}-0-probe"
    made = subprocess.run(
        [_ip(), "netns", "add", probe], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        return f"cannot make a network namespace here: {made.stderr.strip()}"
    subprocess.run([_ip(), "netns", "delete", probe], capture_output=True, check=False)
    return None


def _ip() -> str:
    return tool("ip") or "ip"


def sh(*argv: str, stdin: str | None = None) -> str:
    """Run a command of the machine (not of a host) and return its output; NetnsError if it
    fails, with what it said.
    """
    program = tool(argv[0]) or argv[0]
    done = subprocess.run(
        [program, *argv[1:]], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    # `ip netns list` prints `name (id: 3)` or just `name`
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


def delete_namespace(namespace: str) -> None:
    """Kill whatever still runs in one of our namespaces, then delete it (its interfaces go
    with it; a veth's other end too).
    """
    with contextlib.suppress(NetnsError):
        for pid in sh("ip", "netns", "pids", namespace).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(NetnsError):
        sh("ip", "netns", "delete", namespace)


def sweep() -> list[str]:
    """Delete the namespaces of runs whose process is gone; the names deleted."""
    swept = []
    for namespace in _namespaces():
        match = _OURS.match(namespace)
        if match and not _alive(int(match.group(1))):
            delete_namespace(namespace)
            swept.append(namespace)
    return swept


class Process:
    """A program running in a host; what it prints (stdout and stderr) goes to a log file."""

    def __init__(
        self, host: "Host", name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]
    ) -> None:
        self.host = host
        self.name = name
        self.argv = list(argv)
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                host.exec(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The program's own process id (`ip netns exec` execs it)."""
        return self.popen.pid

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.popen.poll() is None

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """The first match of `pattern` (a str is compiled with re.MULTILINE) in its output,
        waiting up to `timeout` seconds for it; NetnsError with the output if it does not come
        or the program exits first.
        """
        return self.wait_for_all(pattern, 1, timeout)[0]

    def wait_for_all(
        self, pattern: str | re.Pattern[str], count: int, timeout: float = 30.0
    ) -> list[re.Match[str]]:
        """Every match of `pattern` in its output once there are at least `count` of them."""
        compiled = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            matches = list(compiled.finditer(self.output()))
            if len(matches) >= count:
                return matches
            if not self.running():
                why = f"exited with {self.popen.returncode}"
                break
            if time.monotonic() > deadline:
                why = f"did not within {timeout:g} s"
                break
            time.sleep(0.1)
        raise NetnsError(
            f"{self.name} on {self.host.name} was to print {compiled.pattern!r}"
            f"{f' {count} times' if count > 1 else ''} but {why}:\n" + self.output()[-4000:]
        )

    def wait(self, timeout: float) -> int:
        """Its exit code, waiting up to `timeout` seconds (then NetnsError, and it is killed)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise NetnsError(
                f"{self.name} on {self.host.name} ran over {timeout:g} s:\n" + self.output()[-4000:]
            ) from None

    def signal(self, signum: int) -> None:
        """Send it a signal, if it still runs."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, SIGKILL after `grace` s; its exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL; its exit code."""
        self.signal(signal.SIGKILL)
        return self.popen.wait()


class Host:
    """A machine: a namespace with an address on `eth0`; run programs in it."""

    def __init__(self, internet: "Internet", name: str, namespace: str, address: str) -> None:
        self.internet = internet
        self.name = name
        self.namespace = namespace
        self.address = address
        self.interface = "eth0"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address}>"

    def exec(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run in this host."""
        return [_ip(), "netns", "exec", self.namespace, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command here to its end; its output (stdout and stderr) and exit code."""
        return subprocess.run(
            self.exec(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env={**self.internet.env, **(env or {})},
            check=False,
        )

    def sh(self, *argv: str, stdin: str | None = None) -> str:
        """Run a configuration command here (`ip`, `nft`, `sysctl`); NetnsError if it fails."""
        program = tool(argv[0]) or argv[0]
        return sh("ip", "netns", "exec", self.namespace, program, *argv[1:], stdin=stdin)

    def start(
        self, argv: Sequence[str], *, name: str, env: Mapping[str, str] | None = None
    ) -> Process:
        """Start a program here in the background; it is stopped with the internet at the
        latest. Its output goes to `<workdir>/<host>-<name>.log`.
        """
        log = self.internet.new_file(f"{self.name}-{name}", ".log")
        process = Process(self, name, argv, log, {**self.internet.env, **(env or {})})
        self.internet.processes.append(process)
        return process

    def connect(
        self,
        address: str,
        port: int,
        *,
        timeout: float = 3.0,
        local_port: int = 0,
        send: str | None = None,
        read: float = 0.0,
    ) -> str:
        """Open a plain TCP connection from here (tcpprobe.py): `connected`, `refused`,
        `timed out` or the error; then, with `read`, a second line `got TEXT` or `got nothing`.
        """
        argv = [sys.executable, str(TCPPROBE), "connect", address, str(port)]
        argv += ["--timeout", str(timeout), "--local-port", str(local_port), "--read", str(read)]
        if send is not None:
            argv += ["--send", send]
        return self.run(argv, timeout=timeout + read + 30).stdout.strip()

    def listen(self, port: int, *, send: str | None = None, send_after: float = 0.0) -> Process:
        """A plain TCP server here (tcpprobe.py) that prints `from HOST:PORT` for each
        connection, and with `send` sends it on each after `send_after` seconds.
        """
        argv = [sys.executable, str(TCPPROBE), "serve", str(port)]
        if send is not None:
            argv += ["--send", send, "--send-after", str(send_after)]
        server = self.start(argv, name=f"tcp-{port}")
        server.wait_for("^listening$", timeout=10)
        return server

    def capture(self, interface: str | None = None) -> "Capture":
        """A packet capture of one of this host's interfaces (`eth0` by default): use it as a
        context manager around what it should see.
        """
        return Capture(self, interface or self.interface)


class Router(Host):
    """A home router: `wan` on the internet (its `address`), `lan` a bridge for its hosts, the
    LAN masqueraded behind the WAN address, and nothing let in from outside but answers.
    """

    def __init__(
        self, internet: "Internet", name: str, namespace: str, address: str, lan_prefix: str
    ) -> None:
        super().__init__(internet, name, namespace, address)
        self.interface = "wan"
        self.lan_prefix = lan_prefix
        self.lan_address = f"{lan_prefix}.1"
        self.hosts: list[Host] = []

    @property
    def wan_address(self) -> str:
        """The public address its LAN hosts' connections come from."""
        return self.address

    @property
    def lan_subnet(self) -> str:
        """Its LAN, such as `192.0.2.0/24`."""
        return f"{self.lan_prefix}.0/24"

    def lan_host(self, name: str) -> Host:
        """A new host on this router's LAN, its default route via the router."""
        address = f"{self.lan_prefix}.{FIRST_LAN_HOST + len(self.hosts)}"
        host = self.internet._new_host(name, address, switch=self)
        host.sh("ip", "route", "add", "default", "via", self.lan_address)
        self.hosts.append(host)
        return host

    def forward_port(self, port: int, to: Host) -> None:
        """Forward TCP `port` of the WAN address to the same port of a LAN host: what a user
        does in the router's settings so that others can dial in.
        """
        self.sh(
            "nft",
            "-f",
            "-",
            stdin=f"""
table ip nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan" tcp dport {port} dnat to {to.address}:{port}
    }}
}}
add rule ip filter forward ct status dnat accept
""",
        )


def _router_rules(symmetric: bool) -> str:
    """The router's nftables ruleset: masquerade the LAN behind the WAN address (with a random
    port per connection when `symmetric`), forward what the LAN opens and its answers, drop
    everything else that would cross the router.
    """
    # `random,fully-random`: each connection gets a random source port, whatever it was or
    # wherever it goes: a symmetric NAT, on which guessing a peer's port is hopeless.
    masquerade = "masquerade random,fully-random" if symmetric else "masquerade"
    return f"""
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" {masquerade}
    }}
}}
table ip filter {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan" accept
    }}
}}
"""


class Capture:
    """`tcpdump -w` on a host's interface while the `with` block runs; afterwards, the TCP
    packets it saw.
    """

    def __init__(self, host: Host, interface: str) -> None:
        self.host = host
        self.interface = interface
        self.path = host.internet.new_file(f"{host.name}-{interface}", ".pcap")
        self._process: Process | None = None

    def __enter__(self) -> "Capture":
        # -U, --immediate-mode: write each packet as it comes, so that all that came before
        # SIGINT is in the file; -s 0: whole packets; -B: a 64 MiB buffer in the kernel (2 MiB
        # by default: a burst of 64 KiB segments over a veth overflows it); -Z root: keep the
        # rights to write into the test's folder (Debian's tcpdump drops to a user of its own).
        self._process = self.host.start(
            [
                tool("tcpdump") or "tcpdump",
                *("-i", self.interface, "-w", str(self.path), "-B", str(CAPTURE_BUFFER_KIB)),
                *("-U", "--immediate-mode", "-n", "-s", "0", "-Z", "root", "tcp"),
            ],
            name=f"tcpdump-{self.interface}",
        )
        self._process.wait_for("listening on", timeout=10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.signal(signal.SIGINT)  # tcpdump writes out what it has and exits
            self._process.wait(10)

    def packets(self) -> list["Packet"]:
        """Every TCP packet captured; NetnsError if tcpdump lost any, since a capture with holes
        proves nothing about what crossed.
        """
        if self._process is None or self._process.running():
            raise NetnsError("read a capture after its `with` block")
        lost = re.search(r"^(\d+) packets? dropped by kernel", self._process.output(), re.M)
        if lost is None or int(lost.group(1)):
            raise NetnsError(
                f"the capture on {self.host.name} {self.interface} lost packets:\n"
                + self._process.output()
            )
        return list(_tcp_packets(self.path.read_bytes()))

    def payload_bytes(self) -> int:
        """How many bytes of TCP payload crossed the interface."""
        return sum(len(packet.payload) for packet in self.packets())

    def contains(self, needle: bytes) -> bool:
        """Whether any packet carried `needle` in clear."""
        return any(needle in packet.payload for packet in self.packets())

    def connections(self, *, to: str | None = None, port: int | None = None) -> int:
        """How many TCP connections were opened (SYNs seen) to the address `to` and `port`."""
        return sum(
            1
            for packet in self.packets()
            if packet.opens
            and to in (None, packet.destination)
            and port in (None, packet.destination_port)
        )


@dataclass(frozen=True)
class Packet:
    """One captured TCP packet: who sent it where, whether it opens a connection, its payload."""

    source: str
    source_port: int
    destination: str
    destination_port: int
    opens: bool  # SYN without ACK
    payload: bytes


def _tcp_packets(pcap: bytes) -> Iterator[Packet]:
    """The TCP packets over IPv4 in a pcap file of an Ethernet interface."""
    if len(pcap) < 24:
        return
    order = "<" if pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24  # the file's header; then each packet's 16-byte header and its bytes
    while offset + 16 <= len(pcap):
        captured = struct.unpack_from(order + "I", pcap, offset + 8)[0]
        frame = pcap[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:  # IPv4, TCP
            continue
        tcp = 14 + (frame[14] & 0x0F) * 4
        if len(frame) < tcp + 20:
            continue
        length = struct.unpack_from(">H", frame, 16)[0]  # 0 in a packet over 64 KiB (BIG TCP)
        end = 14 + length if length else len(frame)
        source_port, destination_port = struct.unpack_from(">HH", frame, tcp)
        flags = frame[tcp + 13]
        yield Packet(
            source=socket.inet_ntoa(frame[26:30]),
            source_port=source_port,
            destination=socket.inet_ntoa(frame[30:34]),
            destination_port=destination_port,
            opens=flags & 0x12 == 0x02,
            payload=frame[tcp + (frame[tcp + 12] >> 4) * 4 : end],
        )


class Internet:
    """A bridge in a namespace of its own, the internet; public hosts and home routers are
    plugged into it. Use it as a context manager: leaving it removes everything.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        reason = missing()
        if reason:
            raise NetnsError(reason)
        sweep()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        self.tag = f"{NAMESPACE_PREFIX}{os.getpid()}-{next(_COUNTER)}"
        self.namespaces: list[str] = []
        self.processes: list[Process] = []
        self.hosts: list[Host] = []
        self.routers: list[Router] = []
        self._ports = itertools.count(1)
        try:
            self.namespace = self._new_namespace("internet")
            sh("ip", "-n", self.namespace, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.namespace, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Internet":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def new_file(self, stem: str, suffix: str) -> Path:
        """A path in the workdir that nothing has taken: `stem.suffix`, or `stem-2.suffix`..."""
        path = self.workdir / f"{stem}{suffix}"
        for n in itertools.count(2):
            if not path.exists():
                return path
            path = self.workdir / f"{stem}-{n}{suffix}"
        raise AssertionError("unreachable")

    def _new_namespace(self, name: str) -> str:
        namespace = f"{self.tag}-{name}"
        if namespace in self.namespaces:
            raise NetnsError(f"a host named {name} is already on this internet")
        sh("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        sh("ip", "-n", namespace, "link", "set", "lo", "up")
        return namespace

    def _plug(self, namespace: str, inside: str, switch_namespace: str, bridge: str) -> None:
        """A veth from `namespace` (named `inside` there) to a port of `bridge`."""
        port = f"port{next(self._ports)}"
        sh(
            "ip", "link", "add", inside, "netns", namespace, "type", "veth",
            "peer", "name", port, "netns", switch_namespace,
        )  # fmt: skip
        sh("ip", "-n", switch_namespace, "link", "set", port, "master", bridge, "up")
        sh("ip", "-n", namespace, "link", "set", inside, "up")

    def _new_host(self, name: str, address: str, switch: Router | None) -> Host:
        host = Host(self, name, self._new_namespace(name), address)
        if switch is None:
            self._plug(host.namespace, "eth0", self.namespace, "br0")
        else:
            self._plug(host.namespace, "eth0", switch.namespace, "lan")
        sh("ip", "-n", host.namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        self.hosts.append(host)
        return host

    def public_host(self, name: str) -> Host:
        """A host with a public address on the internet (203.0.113.10, .11, ...)."""
        public = [h for h in self.hosts if h.address.startswith(PUBLIC_PREFIX + ".")]
        return self._new_host(name, f"{PUBLIC_PREFIX}.{FIRST_PUBLIC_HOST + len(public)}", None)

    def home_router(
        self, name: str, *, symmetric: bool = False, conntrack_timeout: int | None = None
    ) -> Router:
        """A home router on the internet with a LAN of its own (192.0.2.0/24 for the first,
        198.51.100.0/24 for the second). `symmetric`: a new random port for each connection
        (`masquerade random,fully-random`). `conntrack_timeout`: seconds after which an idle
        established TCP connection is forgotten (and its mapping with it; Linux's default is
        five days, home routers' often minutes).
        """
        if len(self.routers) == len(LAN_PREFIXES):
            raise NetnsError(f"at most {len(LAN_PREFIXES)} home routers: one LAN per test range")
        wan = f"{PUBLIC_PREFIX}.{FIRST_ROUTER_WAN + len(self.routers)}"
        router = Router(self, name, self._new_namespace(name), wan, LAN_PREFIXES[len(self.routers)])
        self.routers.append(router)
        self._plug(router.namespace, "wan", self.namespace, "br0")
        router.sh("ip", "addr", "add", f"{wan}/24", "dev", "wan")
        router.sh("ip", "link", "add", "lan", "type", "bridge")
        router.sh("ip", "addr", "add", f"{router.lan_address}/24", "dev", "lan")
        router.sh("ip", "link", "set", "lan", "up")
        router.sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        router.sh("nft", "-f", "-", stdin=_router_rules(symmetric))
        if conntrack_timeout is not None:
            router.sh(
                "sysctl",
                "-q",
                "-w",
                f"net.netfilter.nf_conntrack_tcp_timeout_established={conntrack_timeout}",
            )
        return router

    def close(self) -> None:
        """Stop every program started here, then delete every namespace."""
        for process in reversed(self.processes):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                process.stop(grace=5)
        for namespace in reversed(self.namespaces):
            delete_namespace(namespace)
        self.namespaces = []
