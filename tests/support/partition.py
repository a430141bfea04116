"""A 3-node NATS cluster whose nodes each live in their own network namespace, for partitions.

Each node has two veth links to the host: one on a *route* bridge that carries the cluster's
own traffic (routes, Raft) and one on a *client* bridge that the host's processes (worker,
services, the test) reach it by. A partition takes a node's route link off its bridge: its
packets to the other nodes, and theirs to it, go nowhere (no error, no reset, as when a
switch port dies), while clients still reach it. Healing puts the link back.

Needs root (network namespaces and bridges); `why_not()` says what is missing otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from deploy.local.servers import CLUSTER_NODE_TEMPLATE, Server, find_binary

CLIENT_PORT = 4222
ROUTE_PORT = 6222


def ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def why_not() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces and bridges need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"pfprobe{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except RuntimeError as exc:
        return f"network namespaces cannot be made here: {exc}"
    return None


class PartitionableCluster:
    """Three nats-server nodes in namespaces `pf<tag>n1..3`, reached at `client_ip(node)`."""

    def __init__(self, state_dir: Path, size: int = 3) -> None:
        self.state_dir, self.size = state_dir, size
        self.tag = secrets.token_hex(2)
        # Two /24s picked at random in 10.0.0.0/8, so parallel runs on one host do not meet.
        a, b = 100 + secrets.randbelow(150), secrets.randbelow(127) * 2
        self.route_net, self.client_net = f"10.{a}.{b}", f"10.{a}.{b + 1}"
        self.route_bridge, self.client_bridge = f"pf{self.tag}rb", f"pf{self.tag}cb"
        self.nodes: list[Server] = []
        self.cut_off: set[int] = set()
        self._made: list[str] = []  # namespaces and host links, removed in reverse at close

    def netns(self, i: int) -> str:
        return f"pf{self.tag}n{i}"

    def client_ip(self, node: Server) -> str:
        return node.host

    def index(self, node: Server) -> int:
        return self.nodes.index(node) + 1

    def urls(self, nodes: list[Server] | None = None) -> list[str]:
        return [f"nats://{n.host}:{n.port}" for n in (nodes or self.nodes)]

    def node_named(self, server_name: str) -> Server:
        """The node a stream's `cluster.leader` names (`n1`..)."""
        return next(n for n in self.nodes if n.name == f"nats-{server_name}")

    def start(self) -> list[Server]:
        try:
            self._make_network()
            for node in self._make_nodes():
                node.start()
        except BaseException:
            self.close()
            raise
        return self.nodes

    def _make_network(self) -> None:
        for bridge, address in ((self.route_bridge, None), (self.client_bridge, f"{self.client_net}.254/24")):
            ip("link", "add", bridge, "type", "bridge")
            self._made.append(f"link:{bridge}")
            if address:
                ip("addr", "add", address, "dev", bridge)
            ip("link", "set", bridge, "up")
        for i in range(1, self.size + 1):
            ns = self.netns(i)
            ip("netns", "add", ns)
            self._made.append(f"netns:{ns}")
            ip("link", "set", "lo", "up", netns=ns)
            for kind, bridge, net in (
                ("r", self.route_bridge, self.route_net),
                ("c", self.client_bridge, self.client_net),
            ):
                host_end, node_end = f"pf{self.tag}{kind}{i}", f"pf{self.tag}{kind}{i}x"
                ip("link", "add", host_end, "type", "veth", "peer", "name", node_end)
                self._made.append(f"link:{host_end}")
                ip("link", "set", node_end, "netns", ns)
                ip("addr", "add", f"{net}.{i}/24", "dev", node_end, netns=ns)
                ip("link", "set", node_end, "up", netns=ns)
                ip("link", "set", host_end, "master", bridge)
                ip("link", "set", host_end, "up")

    def _make_nodes(self) -> list[Server]:
        routes = ", ".join(f"nats-route://{self.route_net}.{i}:{ROUTE_PORT}" for i in range(1, self.size + 1))
        for i in range(1, self.size + 1):
            node_dir = self.state_dir / f"n{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            conf = node_dir / "nats.conf"
            conf.write_text(
                CLUSTER_NODE_TEMPLATE.format(
                    name=f"n{i}",
                    host=f"{self.client_net}.{i}",
                    port=CLIENT_PORT,
                    route_host=f"{self.route_net}.{i}",
                    route_port=ROUTE_PORT,
                    store_dir=node_dir / "js",
                    routes=routes,
                )
            )
            argv = ["ip", "netns", "exec", self.netns(i), find_binary("nats-server"), "-c", str(conf)]
            self.nodes.append(
                Server(f"nats-n{i}", argv, CLIENT_PORT, node_dir / "nats.log", host=f"{self.client_net}.{i}")
            )
        return self.nodes

    def cut(self, node: Server) -> None:
        """Cut `node` off from the other nodes; clients still reach it."""
        i = self.index(node)
        ip("link", "set", f"pf{self.tag}r{i}", "nomaster")
        self.cut_off.add(i)

    def heal(self) -> None:
        for i in sorted(self.cut_off):
            ip("link", "set", f"pf{self.tag}r{i}", "master", self.route_bridge)
        self.cut_off.clear()

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        for made in reversed(self._made):
            kind, name = made.split(":", 1)
            with contextlib.suppress(RuntimeError):  # a veth goes with its namespace's end
                ip("netns", "del", name) if kind == "netns" else ip("link", "del", name)
        self._made.clear()
