"""Start the app and the server as real processes on 127.0.0.1, each in its own session, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(command: list[str], environment: dict[str, str], ready_url: str, log: Path, timeout: float = 240):
    """Popen of command in a new session, once ready_url answers 200; the log holds its output."""
    output = log.open("wb")
    process = subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_session(process)
    raise RuntimeError(f"{ready_url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def session_processes(session_id: int) -> list[int]:
    """Process ids of the live (not zombie) processes in a session, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(session_id: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := session_processes(session_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM the service's process group, then SIGKILL whatever is left of its session."""
    with_leftovers = process.poll() is None
    if with_leftovers:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    for pid in session_processes(process.pid):
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(condition, timeout: float) -> bool:
    """Poll condition until it holds or timeout seconds pass; whether it held (a state waited for,
    never a duration asserted)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
