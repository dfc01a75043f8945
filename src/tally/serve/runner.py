"""`tally serve`: the HTTP app and the scheduler in one process that owns the project, under uvicorn."""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from tally.api.security import check_bind
from tally.errors import TallyError
from tally.jobs.run import work_lock
from tally.serve import routing, serverfile
from tally.serve.handoff import Handoff

LOOPBACK = ("127.0.0.1", "::1", "localhost")
WILDCARD = ("0.0.0.0", "::", "")


def server_app(project, handoff: Handoff | None = None):
    """The served app: the project's HTTP API, plus the CLI handoff route when the warehouse is embedded."""
    from tally.api import create_app

    app = create_app(project)
    if handoff is not None:
        app.include_router(handoff.router())
    return app


def running_server(root: Path) -> serverfile.ServerInfo | None:
    """The live server of the project folder, if one runs (a file a dead one left is removed)."""
    info = serverfile.read(root)
    if info is not None and not info.alive():
        serverfile.remove(root, info.token)
        return None
    return info


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a port in use is one clear error (exit 2)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TallyError(f"port {port} on {host} is in use: another server listens there "
                             "(stop it, or choose a port with --port)") from None
        raise TallyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(project, host: str = "127.0.0.1", port: int = 8000, scheduler: bool = True, profile: str | None = None,
          say: Callable[[str], None] = print, ready: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then finish running requests, commands and jobs, and close the
    project; the exit code. `ready` gets the base URL once the port is bound (`tally demo` lists its routes)."""
    import uvicorn

    root = Path(project.root).resolve()
    other = running_server(root)
    if other is not None:
        raise TallyError(f"tally serve already runs on {root} (pid {other.pid}, port {other.port}); stop it first")
    check_bind(host, project.config.api)   # beyond loopback only with an API key
    sockets, handoff = bind(project, root, host, port)
    server = uvicorn.Server(uvicorn.Config(server_app(project, handoff), log_config=uvicorn.config.LOGGING_CONFIG,
                                           timeout_graceful_shutdown=None))
    routing.install()   # after uvicorn's log handlers took the real stderr
    jobs = start_scheduler(project, say) if scheduler else None
    if handoff is not None:
        cli_host, cli_port = sockets[-1].getsockname()[:2]
        serverfile.write(root, serverfile.ServerInfo(os.getpid(), cli_host, cli_port, handoff.token, profile,
                                                     serverfile.process_start(os.getpid())))
    bound = sockets[0].getsockname()
    say(f"tally serve: http://{_host_text(bound[0])}:{bound[1]} on {root}"
        f"{'; CLI commands on this project run here' if handoff else ''}; {scheduler_text(jobs)}"
        "; Ctrl-C or SIGTERM stops it")
    if ready is not None:
        ready(f"http://{_host_text(bound[0])}:{bound[1]}")
    try:
        with _signals_end_serving():
            server.run(sockets=sockets)
    finally:
        cut_short = stop(project, root, handoff, jobs, forced=server.force_exit)
    if cut_short:
        say(f"stopped at once: {cut_short} command(s) cut short; their writes are rolled back")
        os._exit(1)   # their threads hold open transactions: end without waiting for them
    return 1 if server.force_exit else 0


def bind(project, root: Path, host: str, port: int) -> tuple[list[socket.socket], Handoff | None]:
    """The listening sockets, and the handoff when the warehouse is embedded (opened now: this
    process owns it from here on)."""
    sockets = [listen(host, port)]
    try:
        if not project.warehouse.dialect.single_writer:
            return sockets, None
        if host not in LOOPBACK and host not in WILDCARD:   # the CLI reaches the server on loopback
            sockets.append(listen("127.0.0.1", 0))
        # a handed-off write takes the lock a scheduled job's work takes: they never overlap
        return sockets, Handoff(root, secrets.token_urlsafe(32), work_lock(project))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


def stop(project, root: Path, handoff: Handoff | None, jobs, forced: bool) -> int:
    """After uvicorn: let commands and jobs finish (unless `forced`), close the project, remove the
    server file; how many commands were cut short."""
    with _signals_force_exit(root, handoff):
        if handoff is not None and not forced:
            handoff.wait()
        if jobs is not None:
            jobs.shutdown(wait=not forced)
        cut_short = len(handoff.threads) if handoff is not None else 0
        if not cut_short:
            project.close()   # before the file goes: a CLI command that then runs alone finds the file free
        if handoff is not None:
            serverfile.remove(root, handoff.token)
    return cut_short


def scheduler_text(jobs) -> str:
    """`scheduler on (2 scheduled jobs)`, `scheduler on (no job has a schedule)` or `scheduler off`."""
    if jobs is None:
        return "scheduler off"
    count = len(jobs.next_runs())
    return f"scheduler on ({count} scheduled job{'' if count == 1 else 's'})" if count else \
        "scheduler on (no job has a schedule)"


def start_scheduler(project, say: Callable[[str], None]):
    """The project's scheduler, started, saying one line per run as `tally scheduler` does."""
    from tally.jobs import Scheduler, describe_run

    def on_run(run) -> None:
        say(f"{run.ended_at:%Y-%m-%dT%H:%M:%SZ} {describe_run(run)}" if run.ended_at else describe_run(run))

    scheduler = Scheduler(project, on_run=on_run)
    scheduler.start()
    return scheduler


@contextmanager
def _signals_end_serving():
    """While uvicorn serves it catches SIGINT/SIGTERM itself, and once it has shut down it raises the
    signal again: handlers that do nothing take that one, so cleanup runs and the exit code is 0."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_force_exit(root: Path, handoff: Handoff | None):
    """While running commands and jobs finish, another signal ends the process at once."""
    def now(*_):
        if handoff is not None:
            serverfile.remove(root, handoff.token)
        os._exit(1)

    previous = {sig: signal.signal(sig, now) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host
