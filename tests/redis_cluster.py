"""A local Redis Cluster for tests: three masters (no replicas) on free ports of 127.0.0.1, started from the
`redis-server` binary (Debian's package; `./dev test` installs it), slots assigned by hand (ADDSLOTSRANGE, MEET)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis as redis_sync

CLUSTER_SLOTS = 16384


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def _free_port() -> int:
    # A cluster node also listens on port + 10000 (its bus): both must be free.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class LocalCluster:
    def __init__(self, root: Path, masters: int = 3) -> None:
        binary = redis_server_binary()
        assert binary is not None
        self.binary = binary
        self.root = root
        self.ports = [_free_port() for _ in range(masters)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        data = self.root / str(port)
        data.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(data),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "no",
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis_sync.Redis(port=port, socket_connect_timeout=1) as client:
                    client.ping()
                return
            except redis_sync.exceptions.BusyLoadingError:
                pass
            except redis_sync.exceptions.ConnectionError:
                if self.procs[port].poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def start(self) -> str:
        for port in self.ports:
            self.start_node(port)
        share = CLUSTER_SLOTS // len(self.ports)
        for index, port in enumerate(self.ports):
            last = CLUSTER_SLOTS - 1 if index == len(self.ports) - 1 else (index + 1) * share - 1
            with redis_sync.Redis(port=port) as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
                for other in self.ports[1:]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", other)
        self.wait_ok()
        return self.url

    def wait_ok(self, timeout: float = 30) -> None:
        """Every node sees the whole cluster, every slot covered."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = []
                for port in self.ports:
                    with redis_sync.Redis(port=port, decode_responses=True) as client:
                        info = client.execute_command("CLUSTER INFO")
                        if isinstance(info, str):
                            info = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
                        states.append(
                            info.get("cluster_state") == "ok"
                            and int(info.get("cluster_known_nodes", 0)) == len(self.ports)
                        )
                if all(states):
                    return
            except redis_sync.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster on {self.ports} did not become ok")
            time.sleep(0.1)

    def kill_node(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
