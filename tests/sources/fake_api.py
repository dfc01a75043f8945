"""A small real upstream Transaction API (stdlib only) with every pagination style and injectable faults.

    with serve(transactions(25), token="s3cret") as (url, api):
        api.fail(429, request=2, retry_after=1)      # the 2nd request is throttled once
        ...                                          # GET {url}/page/transactions?page=1&per_page=10

Routes (all filter by `updated_since`, an ISO timestamp, inclusive, and sort by `updated_at`, `id`):
  /plain/transactions    the whole list as the body
  /page/transactions     ?page=1&per_page=N     -> {"data": [...], "meta": {"page", "per_page", "total"}}
  /offset/transactions   ?offset=0&limit=N      -> {"data": [...], "meta": {"offset", "limit", "total"}}
  /cursor/transactions   ?cursor=T&limit=N      -> {"data": [...], "meta": {"next": T or null}}
  /link/transactions     ?page=1&per_page=N     -> the list as the body, `Link: <...>; rel="next"`
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

STYLES = ("plain", "page", "offset", "cursor", "link")
DEFAULT_SIZE = 10
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def transactions(count: int, start: datetime = START) -> list[dict]:
    """`count` transaction records, ids 1…count, updated one minute apart."""
    return [{"id": i, "user_id": 100 + i % 3, "amount": round(i * 12.5, 2), "status": "fulfilled",
             "meta": {"channel": "web" if i % 2 else "app"},
             "updated_at": stamp(start + timedelta(minutes=i))} for i in range(1, count + 1)]


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) answering one request."""

    status: int | None = None        # answer this status with an error body
    retry_after: str | None = None   # the `Retry-After` header sent with it
    delay: float = 0.0               # seconds to sleep before answering


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    number: int
    path: str
    params: dict[str, str]
    authorized: bool
    at: float                        # time.monotonic() on arrival


class FakeApi:
    """The server's state; tests change records and inject faults while it runs."""

    def __init__(self, records: list[dict], token: str | None = None):
        self.records = records
        self.token = token
        self.requests: list[Request] = []
        self._faults: dict[int, Fault] = {}
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def upsert(self, record: dict) -> None:
        """Add a record, or replace the one with the same id."""
        with self._lock:
            self.records = [r for r in self.records if r["id"] != record["id"]] + [record]

    def fail(self, status: int, *, request: int | None = None, times: int = 1, retry_after: float | str | None = None):
        """Answer `status` to `times` requests from the `request`-th one (1-based; default: the next)."""
        self._inject(Fault(status=status, retry_after=None if retry_after is None else str(retry_after)),
                     request, times)

    def stall(self, seconds: float, *, request: int | None = None, times: int = 1) -> None:
        """Sleep `seconds` before answering, so a client with a shorter timeout gives up."""
        self._inject(Fault(delay=seconds), request, times)

    def _inject(self, fault: Fault, request: int | None, times: int) -> None:
        with self._lock:
            first = request if request is not None else len(self.requests) + 1
            self._faults.update({n: fault for n in range(first, first + times)})

    def _arrive(self, path: str, params: dict[str, str], authorization: str | None) -> tuple[Request, Fault | None]:
        with self._lock:
            number = len(self.requests) + 1
            request = Request(number, path, params, self.token is None or authorization == f"Bearer {self.token}",
                              time.monotonic())
            self.requests.append(request)
            return request, self._faults.pop(number, None)

    def answer(self, base: str, path: str, params: dict[str, str], authorization: str | None):
        """(status, headers, JSON body) for one GET."""
        request, fault = self._arrive(path, params, authorization)
        if fault and fault.delay:
            self.closing.wait(fault.delay)
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, headers, {"error": f"injected {fault.status}"}
        if not request.authorized:
            return 401, {"WWW-Authenticate": "Bearer"}, {"error": "invalid or missing bearer token"}
        style = path.strip("/").split("/")[0]
        if path.strip("/") != f"{style}/transactions" or style not in STYLES:
            return 404, {}, {"error": f"no route {path}"}
        try:
            rows = self._selected(params.get("updated_since"))
            return _paginate(style, rows, params, f"{base}{path}")
        except ValueError as exc:
            return 400, {}, {"error": str(exc)}

    def _selected(self, since: str | None) -> list[dict]:
        with self._lock:
            rows = sorted(self.records, key=lambda r: (r["updated_at"], r["id"]))
        if since is None:
            return rows
        floor = _instant(since)
        return [r for r in rows if _instant(r["updated_at"]) >= floor]


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _number(params: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _paginate(style: str, rows: list[dict], params: dict[str, str], here: str):
    total = len(rows)
    if style == "plain":
        return 200, {}, rows
    if style in ("page", "link"):
        page, size = _number(params, "page", 1), _number(params, "per_page", DEFAULT_SIZE)
        chunk = rows[(page - 1) * size:page * size] if page >= 1 else []
        if style == "page":
            return 200, {}, {"data": chunk, "meta": {"page": page, "per_page": size, "total": total}}
        headers = {}
        if page * size < total:
            headers["Link"] = f'<{here}?{urlencode({**params, "page": page + 1})}>; rel="next"'
        return 200, headers, chunk
    if style == "offset":
        offset, limit = _number(params, "offset", 0), _number(params, "limit", DEFAULT_SIZE)
        return 200, {}, {"data": rows[offset:offset + limit], "meta": {"offset": offset, "limit": limit, "total": total}}
    start, limit = _cursor_offset(params.get("cursor")), _number(params, "limit", DEFAULT_SIZE)
    end = start + limit
    token = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < total else None
    return 200, {}, {"data": rows[start:end], "meta": {"next": token}}


def _cursor_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except ValueError:
        raise ValueError(f"bad cursor {token!r}") from None


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            base = f"http://{self.headers.get('Host', '127.0.0.1')}"
            status, headers, body = api.answer(base, parts.path, dict(parse_qsl(parts.query)),
                                               self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        def log_message(self, format: str, *args) -> None:  # quiet: tests read api.requests instead
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is not our error
            super().handle_error(request, client_address)


@contextmanager
def serve(records: list[dict] | None = None, *, token: str | None = None,
          port: int = 0) -> Iterator[tuple[str, FakeApi]]:
    """Run the API on 127.0.0.1 (a free port by default) in a thread; yields (base URL, controller)."""
    api = FakeApi(transactions(DEFAULT_SIZE) if records is None else records, token)
    server = _Server(("127.0.0.1", port), _handler(api))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", api
    finally:
        api.closing.set()       # wake stalled answers
        server.shutdown()
        server.server_close()
        thread.join()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    with serve(transactions(args.records), token=args.token, port=args.port) as (url, _):
        print(f"serving {args.records} transactions at {url}/{{{','.join(STYLES)}}}/transactions")
        threading.Event().wait()
