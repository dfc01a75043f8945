"""The CLI's side of the handoff: when `tally serve` owns the project's embedded warehouse, send it the
command line and print what it streams back (standard library only: every CLI start passes here)."""

from __future__ import annotations

import json
import os
import sys
import time

from tally.serve import serverfile
from tally.serve.serverfile import ROUTE, TERMINAL_ENV, TOKEN_HEADER

LOCAL = frozenset({"init", "demo"})             # never touch this project's warehouse
OWNERS = frozenset({"serve", "scheduler"})      # would own the project themselves: one owner at a time
ANSWER_WAIT = 60.0   # seconds a live server may take to answer (starting, or finishing its last requests)


def handed_off(args: list[str]) -> int | None:
    """The exit code of `args` run by the project's server, or None when this process runs it."""
    command, project = command_and_project(args)
    if command is None or command in LOCAL or "--help" in args or "--version" in args:
        return None
    root = serverfile.project_root(project)
    if not serverfile.server_file(root).exists():   # the usual case: one stat, nothing else
        return None
    started = time.monotonic()
    while True:
        connection, info = _connect(root, started)
        if connection is None:
            return None
        if command in OWNERS:
            connection.close()
            return _fail(f"tally serve (pid {info.pid}, {_url(info)}) already runs this project; "
                         f"stop it before `tally {command}`", 2)
        code = _forward(connection, info, without_project(args))
        if code is not None:
            return code
        time.sleep(0.1)   # the server closed the connection before taking the command: it is stopping


def command_and_project(args: list[str]) -> tuple[str | None, str]:
    """The command's name and the --project folder (global options come first: see hoist_global_options)."""
    index, project = command_index(args)
    return (args[index] if index < len(args) else None), project


def command_index(args: list[str]) -> tuple[int, str]:
    """Where the command's name is in `args` (len(args) when there is none) and the --project folder."""
    project, index = ".", 0
    while index < len(args):
        arg = args[index]
        if arg in ("--project", "-p", "--profile"):
            if arg != "--profile" and index + 1 < len(args):
                project = args[index + 1]
            index += 2
        elif arg.startswith("--project=") or (arg.startswith("-p") and not arg.startswith("--")):
            project = arg.split("=", 1)[1] if arg.startswith("--") else arg[2:]
            index += 1
        elif arg.startswith("-"):
            index += 1
        else:
            return index, project
    return len(args), project


def without_project(args: list[str]) -> list[str]:
    """`args` without the global --project: the server runs the command on its own project folder."""
    end, _ = command_index(args)
    kept, index = [], 0
    while index < end:
        arg = args[index]
        if arg in ("--project", "-p", "--profile"):
            kept += args[index:index + 2] if arg == "--profile" else []
            index += 2
            continue
        if not (arg.startswith("--project=") or (arg.startswith("-p") and not arg.startswith("--"))):
            kept.append(arg)
        index += 1
    return kept + args[end:]


def _connect(root, started: float):
    """An open connection to the project's live server, or (None, None) when none runs: a file left by
    a dead server is removed; a live one that does not answer yet (starting or stopping) is waited for."""
    import http.client

    noted = False
    while True:
        info = serverfile.read(root)
        if info is None:
            if os.path.exists(serverfile.server_file(root)) and not os.access(serverfile.server_file(root), os.R_OK):
                raise SystemExit(_fail("tally serve owns this project as another user (its .tally/server.json "
                                       "is theirs only): run the command as that user", 2))
            return None, None
        if not info.alive():
            serverfile.remove(root, info.token)
            return None, None
        connection = http.client.HTTPConnection(info.address, info.port, timeout=10)
        try:
            connection.connect()
            connection.sock.settimeout(None)   # a handed-off command may run for hours
            return connection, info
        except OSError:
            connection.close()
        if time.monotonic() > started + ANSWER_WAIT:
            raise SystemExit(_fail(f"tally serve (pid {info.pid}) owns this project but has not answered on "
                                   f"{_url(info)} for {ANSWER_WAIT:.0f} s (starting, or stopping after a long "
                                   "command?); try again once it answers or has exited", 1))
        if not noted and time.monotonic() > started + 1:
            noted = True
            sys.stderr.write(f"note: waiting for tally serve (pid {info.pid}) on {_url(info)} ...\n")
        time.sleep(0.1)


def _forward(connection, info: serverfile.ServerInfo, args: list[str]) -> int | None:
    """Send the command; copy the streamed output to this process's stdout/stderr; its exit code
    (None when the server closed the connection without taking the command)."""
    body = json.dumps({"args": args, "terminal": terminal()}).encode()
    try:
        connection.request("POST", ROUTE, body, {"Content-Type": "application/json", TOKEN_HEADER: info.token})
        response = connection.getresponse()
    except OSError:   # no answer at all: the command never started
        connection.close()
        return None
    try:
        if response.status != 200:
            return _fail(f"tally serve (pid {info.pid}) refused the command: {_reason(response)}", 2)
        streams = {"out": sys.stdout, "err": sys.stderr}
        for line in response:
            item = json.loads(line)
            if "exit" in item:
                return int(item["exit"])
            stream = streams[item["stream"]]
            stream.write(item["text"])
            stream.flush()
    except KeyboardInterrupt:
        return _fail(f"aborted (the command goes on in tally serve, pid {info.pid})", 1)
    except (OSError, ValueError, KeyError):
        pass
    finally:
        connection.close()
    return _fail(f"tally serve (pid {info.pid}) stopped before the command finished; run it again", 1)


def terminal() -> dict:
    """What the server needs to print as this terminal would: width, whether output is a terminal,
    and the variables rich reads (colours, NO_COLOR)."""
    env = {name: os.environ[name] for name in TERMINAL_ENV if name in os.environ}
    width = height = None
    for descriptor in (0, 1, 2):   # as rich measures it
        try:
            width, height = os.get_terminal_size(descriptor)
            break
        except (OSError, ValueError):
            continue
    if env.get("COLUMNS", "").isdigit():
        width = int(env["COLUMNS"])
    if env.get("LINES", "").isdigit():
        height = int(env["LINES"])
    return {"env": env, "width": width or 80, "height": height or 25,
            "stdout_tty": _isatty(sys.stdout), "stderr_tty": _isatty(sys.stderr)}


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _reason(response) -> str:
    try:
        return json.loads(response.read())["error"]["message"]
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {response.status}"


def _url(info: serverfile.ServerInfo) -> str:
    host = f"[{info.address}]" if ":" in info.address else info.address
    return f"http://{host}:{info.port}"


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code
