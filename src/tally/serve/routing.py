"""Thread-routed output for handed-off commands: while `tally serve` runs a CLI command in a worker
thread, what that thread prints (sys.stdout/stderr, the CLI's rich consoles) goes to its request, and
its CLI state (--project, --debug, projects to close) is its own; every other thread is unaffected."""

from __future__ import annotations

import io
import sys
import threading
from typing import Callable

from tally.serve.serverfile import TERMINAL_ENV

_local = threading.local()



class Sink:
    """One stream of a handed-off command: each write goes to `emit(name, text)`."""

    def __init__(self, name: str, emit: Callable[[str, str], None]):
        self.name, self.emit = name, emit
        self.encoding, self.errors = "utf-8", "strict"

    def write(self, text: str) -> int:
        if text:
            self.emit(self.name, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False   # never interactive: no live progress bars, no prompts

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a handed-off command's output has no file descriptor")


class Session:
    """A handed-off command's streams and the consoles that print to them as the client's terminal would."""

    def __init__(self, emit: Callable[[str, str], None], terminal: dict):
        self.sinks = {"out": Sink("out", emit), "err": Sink("err", emit)}
        self.terminal = terminal
        self.consoles: dict = {}

    def console(self, like):
        """A rich Console for this session shaped like the CLI's `like` (stdout or stderr console)."""
        name = "err" if like.stderr else "out"
        if name not in self.consoles:
            self.consoles[name] = client_console(like, self.sinks[name], self.terminal,
                                                 self.terminal.get(f"std{name}_tty", False))
        return self.consoles[name]


def client_console(like, sink: Sink, terminal: dict, tty: bool):
    """A Console writing to `sink` with the client terminal's width and colours. It never counts as a
    terminal: a live display would swap sys.stdout for the whole process."""
    from rich.console import Console

    env = {name: str(value) for name, value in dict(terminal.get("env") or {}).items() if name in TERMINAL_ENV}
    probe = Console(file=_Probe(tty), stderr=like.stderr, _environ=env)   # what the client's rich would choose
    return Console(file=sink, stderr=like.stderr, soft_wrap=like.soft_wrap, force_terminal=False,
                   color_system=probe.color_system, no_color=probe.no_color, _environ=env,
                   width=_positive(terminal.get("width"), 80), height=_positive(terminal.get("height"), 25))


class _Probe(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _positive(value, default: int) -> int:
    return value if isinstance(value, int) and 0 < value < 10_000 else default


def current() -> Session | None:
    return getattr(_local, "session", None)


def enter(session: Session) -> None:
    _local.session = session


def leave() -> None:
    _local.session = None


class RoutedStream:
    """Stands for sys.stdout or sys.stderr: a handed-off thread writes to its session, others to `real`."""

    def __init__(self, real, name: str):
        self.real, self.name = real, name

    def _target(self):
        session = current()
        return session.sinks[self.name] if session is not None else self.real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()

    def fileno(self) -> int:
        return self._target().fileno()

    def __getattr__(self, name: str):
        return getattr(self.real, name)


class RoutedConsole:
    """Stands for one of the CLI's rich consoles: a handed-off thread gets its session's console."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)

    def _target(self):
        session = current()
        return session.console(self._real) if session is not None else self._real

    def __getattr__(self, name: str):
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target(), name, value)

    def __enter__(self):
        return self._target().__enter__()

    def __exit__(self, *exc):
        return self._target().__exit__(*exc)


def _thread_state(template):
    """tally.cli's `state` with one copy per thread (two handed-off commands set --project and close
    their own projects independently)."""
    class ThreadState(threading.local):
        def __init__(self):
            self.project_path, self.profile, self.debug = template.project_path, template.profile, template.debug
            self.opened = []

    return ThreadState()


def install() -> None:
    """Route output and CLI state per thread, once per process (the server calls it at start)."""
    from tally import cli

    if isinstance(sys.stdout, RoutedStream):
        return
    sys.stdout, sys.stderr = RoutedStream(sys.stdout, "out"), RoutedStream(sys.stderr, "err")
    cli.out, cli.err = RoutedConsole(cli.out), RoutedConsole(cli.err)
    cli.state = _thread_state(cli.state)
