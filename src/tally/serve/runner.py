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

from tally.errors import TallyError
from tally.serve import routing, serverfile
from tally.serve.handoff import Handoff

LOOPBACK = ("127.0.0.1", "::1", "localhost")
WILDCARD = ("0.0.0.0", "::", "")


def server_app(project, handoff: Handoff | None = None):
    """The served app: the project's HTTP API, plus the CLI handoff route when the warehouse is embedded."""
    from fastapi import FastAPI

    app = FastAPI(title=f"Tally: {project.config.name}", docs_url=None, redoc_url=None, openapi_url=None)
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
          say: Callable[[str], None] = print) -> int:
    """Serve until SIGTERM/SIGINT, then finish running requests, commands and jobs; the exit code."""
    import uvicorn

    root = Path(project.root).resolve()
    other = running_server(root)
    if other is not None:
        raise TallyError(f"tally serve already runs on {root} (pid {other.pid}, port {other.port}); stop it first")
    sockets = [listen(host, port)]
    try:
        # an embedded warehouse admits one writing process: open it now, so this one owns it
        handoff = None
        if project.warehouse.dialect.single_writer:
            if host not in LOOPBACK and host not in WILDCARD:   # the CLI reaches the server on loopback
                sockets.append(listen("127.0.0.1", 0))
            handoff = Handoff(root, secrets.token_urlsafe(32))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    config = uvicorn.Config(server_app(project, handoff), log_config=uvicorn.config.LOGGING_CONFIG,
                            timeout_graceful_shutdown=None)
    server = uvicorn.Server(config)
    routing.install()   # after uvicorn's log handlers took the real stderr
    jobs = start_scheduler(project) if scheduler else None
    if handoff is not None:
        cli_host, cli_port = sockets[-1].getsockname()[:2]
        serverfile.write(root, serverfile.ServerInfo(os.getpid(), cli_host, cli_port, handoff.token, profile,
                                                     serverfile.process_start(os.getpid())))
    bound = sockets[0].getsockname()
    say(f"tally serve: http://{_host_text(bound[0])}:{bound[1]} on {root}"
        f"{'; CLI commands on this project run here' if handoff else ''}; scheduler "
        f"{'on' if jobs else 'off'} (Ctrl-C or SIGTERM stops it)")
    try:
        with _signals_end_serving():
            server.run(sockets=sockets)
    finally:
        forced = server.force_exit
        with _signals_force_exit(root, handoff):
            if handoff is not None and not forced:
                handoff.wait()
            if jobs is not None:
                jobs.shutdown(wait=not forced)
            if handoff is not None:
                serverfile.remove(root, handoff.token)
    if forced and handoff is not None and handoff.threads:
        say(f"stopped at once: {len(handoff.threads)} command(s) cut short; their writes are rolled back")
        os._exit(1)   # the threads hold open transactions: end without waiting for them
    return 1 if forced else 0


def start_scheduler(project):
    """The project's scheduler, started (None until tally.jobs provides one)."""
    try:
        from tally.jobs import Scheduler
    except ImportError:   # jobs/ lands with issue 16's scheduler
        return None
    scheduler = Scheduler(project)
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
