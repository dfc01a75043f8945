"""`.tally/server.json`: how the CLI finds the `tally serve` that owns a project (standard library only:
the CLI reads it on every start)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

NAME = "server.json"
# what the CLI and the server agree on: the handoff route, its token header, the terminal variables sent
ROUTE = "/api/v1/_cli"
TOKEN_HEADER = "X-Tally-Token"
TERMINAL_ENV = ("COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
                "TTY_INTERACTIVE")


@dataclass(frozen=True)
class ServerInfo:
    """What a running server writes for the CLI: where it listens and the token of its `_cli` route."""

    pid: int
    host: str
    port: int
    token: str
    profile: str | None = None
    started: str | None = None   # the process's start time: a pid reused by another process is not the server

    def alive(self) -> bool:
        """Whether the server's process still runs (a server killed with -9 leaves its file behind)."""
        return pid_alive(self.pid) and (self.started is None or process_start(self.pid) in (None, self.started))

    @property
    def address(self) -> str:
        """The loopback address the CLI connects to (a server bound to every interface answers there too)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)


def project_root(path: str | os.PathLike) -> Path:
    """The project folder of `--project` (a folder, or its tally.yml)."""
    path = Path(path)
    return path.parent if path.suffix in (".yml", ".yaml") and not path.is_dir() else path


def server_file(root: str | os.PathLike) -> Path:
    return Path(root) / ".tally" / NAME


def write(root: str | os.PathLike, info: ServerInfo) -> Path:
    """Write the file atomically (a reader never sees half of it), readable by its owner only (0600:
    the token lets whoever holds it run commands on the project)."""
    target = server_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{NAME}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(info), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)   # O_CREAT's mode is masked by the umask; 0600 is what we want
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def read(root: str | os.PathLike) -> ServerInfo | None:
    """The server's info, or None when there is no file or it is not one of ours."""
    try:
        data = json.loads(server_file(root).read_text(encoding="utf-8"))
        return ServerInfo(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]),
                          token=str(data["token"]), profile=data.get("profile"), started=data.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(root: str | os.PathLike, token: str | None = None) -> None:
    """Remove the file; with `token`, only if it is still this server's (never another one's)."""
    if token is not None:
        info = read(root)
        if info is None or info.token != token:
            return
    server_file(root).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    return not _zombie(pid)


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat's fields after the command name (Linux; empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet is dead for us (state Z)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == b"Z"


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (stat field 22), None where unknown."""
    fields = _stat_fields(pid)
    return fields[19].decode() if len(fields) > 19 else None
