"""The server's side of the handoff: `POST /api/v1/_cli` runs a CLI command line in a worker thread of
the process that owns the warehouse and streams its output back (NDJSON lines, the exit code last)."""

import asyncio
import hmac
import ipaddress
import json
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path

from tally.serve import routing
from tally.serve.client import OWNERS, command_index
from tally.serve.serverfile import ROUTE, TOKEN_HEADER

# commands that only read: they run side by side; every other one (ingest, seed, rollup build,
# verify --repair, commands added later) runs alone, one at a time
READS = frozenset({"query", "metrics", "tables", "describe", "rejects", "preview", "jobs", "verify",
                   "ledger show", "ledger list", "rollup list"})
# one handed-off write at a time when no scheduler lends its lock (see Handoff)
WRITES = threading.Lock()
WAIT_NOTE = 1.0   # seconds a write waits before it says so


def is_write(args: list[str]) -> bool:
    """Whether a command line may write to the warehouse (unknown commands count as writes)."""
    index, _ = command_index(args)
    words = [arg for arg in args[index:index + 2] if not arg.startswith("-")]
    return not (words and (words[0] in READS or " ".join(words) in READS)) or "--repair" in args


class Handoff:
    """Runs handed-off command lines on the project folder `root` for clients holding `token`; a
    write holds `write_lock` (the scheduler's, so it never runs beside a scheduled job)."""

    def __init__(self, root: Path, token: str, write_lock=None):
        self.root, self.token = Path(root).resolve(), token
        self.write_lock = write_lock if write_lock is not None else WRITES
        self.threads: set[threading.Thread] = set()

    def router(self):
        """The `_cli` route (loopback clients with the token of server.json only; not in the OpenAPI)."""
        from fastapi import APIRouter, Request
        from fastapi.responses import StreamingResponse

        router = APIRouter()

        @router.post(ROUTE, include_in_schema=False)
        async def cli_command(request: Request):
            refusal = self.refusal(request)
            if refusal is not None:
                return refusal
            try:
                body = await request.json()
                args, terminal = body["args"], body.get("terminal") or {}
                if not (isinstance(args, list) and all(isinstance(a, str) for a in args)
                        and isinstance(terminal, dict)):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return _error(400, "bad_request", 'expected JSON {"args": [text, ...], "terminal": {...}}')
            index, _ = command_index(args)
            if index < len(args) and args[index] in OWNERS:
                return _error(409, "conflict", f"`tally {args[index]}` cannot run inside tally serve")
            return StreamingResponse(self.stream(args, terminal), media_type="application/x-ndjson")

        return router

    def refusal(self, request):
        """An error response unless the request comes from this machine with the right token."""
        host = request.client.host if request.client else ""
        try:
            loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return _error(403, "forbidden", "CLI commands are accepted from this machine only")
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _error(401, "unauthorized", "wrong or missing CLI token (it is in .tally/server.json)")
        return None

    async def stream(self, args: list[str], terminal: dict):
        """Start the command in a worker thread; yield its output as it comes, the exit code last."""
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()

        def put(item: dict) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:   # the server stopped at once (a second Ctrl-C): nobody reads any more
                pass

        session = routing.Session(lambda name, text: put({"stream": name, "text": text}), terminal)
        worker = threading.Thread(target=self.run, args=(args, session, put), daemon=True,
                                  name=f"tally {' '.join(args[:2])}")
        self.threads.add(worker)
        worker.start()
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            yield "".join(json.dumps(item) + "\n" for item in items)
            if "exit" in items[-1]:
                return

    def run(self, args: list[str], session: routing.Session, put) -> None:
        """Run `tally args` on the server's project as this thread's session; put its exit code."""
        from tally import cli

        routing.enter(session)
        code = 1
        try:
            with self.serialized(args, session):
                code = cli.run(["--project", str(self.root), *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:   # what a direct run would show: a traceback with --debug, else one line
            detail = traceback.format_exc() if "--debug" in args else \
                f"error: internal error in tally serve: {type(exc).__name__}: {exc}\n"
            session.sinks["err"].write(detail)
        finally:
            routing.leave()
            self.threads.discard(threading.current_thread())
            put({"exit": code})

    @contextmanager
    def serialized(self, args: list[str], session: routing.Session):
        """Writes run one at a time (and never beside a scheduled job); reads run at once."""
        if not is_write(args):
            yield
            return
        if not self.write_lock.acquire(timeout=WAIT_NOTE):
            session.sinks["err"].write("note: waiting for another write on this project to finish ...\n")
            self.write_lock.acquire()
        try:
            yield
        finally:
            self.write_lock.release()

    def wait(self) -> None:
        """Let running commands finish (the server stops after its clients may have gone)."""
        for worker in list(self.threads):
            worker.join()


def _error(status: int, code: str, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
