"""Ports and readiness checks for servers started by the tests, and hosts of their own."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


@dataclass
class NetworkHost:
    """Another host on a private network with this one: a network namespace joined to this
    host by a veth pair (this side `gateway`, that side `address`, a /24 of their own). What
    runs in it (`enter()` + a command: sshd, and the containers podman starts with the host's
    network from there) has that network only; the file system is this machine's."""

    name: str
    gateway: str
    address: str

    def enter(self) -> list[str]:
        # nsenter, not `ip netns exec`: the latter remounts /sys, which hides the cgroups
        # podman's runtime needs.
        return ["nsenter", f"--net=/run/netns/{self.name}"]

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", f"{self.name}-h"], capture_output=True, check=False)


def make_network_host() -> NetworkHost:
    """A new namespace on the first free 10.77.N.0/24."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    number = next(n for n in range(1, 250) if f"10.77.{n}." not in used)
    host = NetworkHost(f"mlh{uuid.uuid4().hex[:6]}", f"10.77.{number}.1", f"10.77.{number}.2")
    inside = f"{host.name}-n"
    steps = [
        ["ip", "netns", "add", host.name],
        ["ip", "link", "add", f"{host.name}-h", "type", "veth", "peer", "name", inside],
        ["ip", "link", "set", inside, "netns", host.name],
        ["ip", "addr", "add", f"{host.gateway}/24", "dev", f"{host.name}-h"],
        ["ip", "link", "set", f"{host.name}-h", "up"],
        [*host.enter(), "ip", "addr", "add", f"{host.address}/24", "dev", inside],
        [*host.enter(), "ip", "link", "set", inside, "up"],
        [*host.enter(), "ip", "link", "set", "lo", "up"],
        [*host.enter(), "ip", "route", "add", "default", "via", host.gateway],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
    except subprocess.CalledProcessError:
        host.remove()
        raise
    return host
