"""Generate the `ledger` example's seeded transactions, and serve them as its upstream Transaction API.

A rewards platform: users earn credit, spend it, ask for payouts from what they hold, and the finance
team pays the payouts out a few days later (some are still pending). A few per cent of the rows are
corrected after the fact (a later `updatedAt`, a changed amount, now and then a changed type). Everything
is seeded: the same `rows` and `seed` give the same transactions, and the same live events after them.

The upstream API (a stdlib HTTP server in a thread, `serve_upstream`) pages the transactions by a cursor
on (`updatedAt`, `id`), adds new and edited rows as time goes on (`advance`, or every `arrive_every`
seconds), and answers `429` with `Retry-After` on every `throttle_every`-th request when asked to:

    GET {url}/transactions?updatedSince=2025-06-01T00:00:00Z&limit=500&cursor=TOKEN
    -> {"items": [{"id", "userId", "type", "amount", "createdAt", "updatedAt"}, ...],
        "meta": {"itemCount": 500, "itemsPerPage": 500, "nextCursor": "TOKEN" | null}}

    python examples/ledger/generate.py DIR --rows 200000     # write DIR/data/upstream.json (rows, seed)
    python examples/ledger/generate.py DIR --serve 8766      # serve DIR's Transaction API on port 8766
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import random
import sys
import threading
import uuid
from collections import deque
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import numpy as np

START = datetime(2025, 1, 1, tzinfo=timezone.utc)     # the history: [START, END), UTC
END = datetime(2026, 1, 1, tzinfo=timezone.utc)
TYPES = ("earned", "spent", "payout", "paid_out")
DRAWS = (0.45, 0.30, 0.10, 0.15)    # what a user's next action tries to be (it falls back to `earned`)
EDITED = 0.04                      # share of earned/spent rows corrected after the fact
MIN_PAYOUT = 1_000                 # cents: payouts are requested in whole dollars, at least $10
PAYOUT_DELAY = 86_400_000          # ms: finance pays a request out no sooner than a day after it
DEFAULT_LIMIT, MAX_LIMIT = 100, 5_000
API_URL_ENV = "LEDGER_API_URL"     # tally.yml reads the upstream's address from here
SETTINGS = "data/upstream.json"    # what `prepare` writes: the upstream's rows, seed and behaviour
MS = 1_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Txn(NamedTuple):
    """One transaction as the upstream holds it (amount in cents, times as ISO text with ms and Z)."""

    id: str
    user_id: str
    type: str
    cents: int
    created_at: str
    updated_at: str

    def as_json(self) -> dict:
        return {"id": self.id, "userId": self.user_id, "type": self.type, "amount": self.cents / 100,
                "createdAt": self.created_at, "updatedAt": self.updated_at}


def stamp(ms: int) -> str:
    """Milliseconds since the epoch as the API's ISO text: `2025-03-16T12:33:11.000Z` (sorts as text)."""
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def millis(moment: datetime) -> int:
    """An aware datetime as whole milliseconds since the epoch (floored)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


class Wallets:
    """Each user's available balance and pending payout requests: what the users may do next."""

    def __init__(self, users: list[str]):
        self.users = users
        self.balance = {user: 0 for user in users}      # cents: earned - spent - payout requested
        self.pending: dict[str, deque] = {user: deque() for user in users}   # (requested at ms, cents)

    def act(self, user: str, draw: int, cents: int, at: int) -> tuple[str, int]:
        """The transaction a user's drawn action becomes: (type, cents)."""
        if draw == 3 and self.pending[user] and self.pending[user][0][0] <= at - PAYOUT_DELAY:
            return "paid_out", self.pending[user].popleft()[1]
        if draw == 2 and self.balance[user] >= MIN_PAYOUT:
            amount = max(MIN_PAYOUT, min(4 * cents, self.balance[user]) // 100 * 100)
            self.balance[user] -= amount
            self.pending[user].append((at, amount))
            return "payout", amount
        if draw == 1 and self.balance[user] > 0:
            amount = min(cents, self.balance[user])
            self.balance[user] -= amount
            return "spent", amount
        self.balance[user] += cents
        return "earned", cents


def history(rows: int, seed: int = 42) -> tuple[list[Txn], Wallets, np.ndarray]:
    """`rows` transactions over [START, END); the wallets after them and the users' activity weights."""
    rng = np.random.default_rng(seed)
    count = max(1, min(rows // 10, 500_000))
    users = [f"{n:06d}" for n in rng.choice(1_000_000, count, replace=False)]
    weights = rng.lognormal(0.0, 1.0, count)
    who = rng.choice(count, rows, p=weights / weights.sum())
    draws = rng.choice(4, rows, p=DRAWS)
    span = int((END - START).total_seconds() * MS)
    created = np.sort(rng.integers(0, span, rows)) + millis(START)
    cents = np.maximum(1, rng.lognormal(np.log(2_500), 0.9, rows)).astype(np.int64)
    wallets = Wallets(users)
    raw = rng.bytes(16 * rows)
    ids = [str(uuid.UUID(bytes=raw[i:i + 16], version=4)) for i in range(0, 16 * rows, 16)]
    made = []
    for i in range(rows):
        kind, amount = wallets.act(users[who[i]], int(draws[i]), int(cents[i]), int(created[i]))
        made.append([ids[i], users[who[i]], kind, amount, int(created[i]), int(created[i])])
    _edit_some(made, rng, millis(END) - 1)
    created_at = _stamps([row[4] for row in made])
    updated_at = _stamps([row[5] for row in made])
    txns = [Txn(row[0], row[1], row[2], row[3], at, up) for row, at, up in zip(made, created_at, updated_at)]
    return txns, wallets, weights


def _stamps(ms: list[int]) -> list[str]:
    """`stamp` over many values at once."""
    text = np.datetime_as_string(np.array(ms, dtype="datetime64[ms]"), unit="ms")
    return [value + "Z" for value in text.tolist()]


def _edit_some(made: list[list], rng: np.random.Generator, last: int) -> None:
    """Correct a few earned/spent rows later: a new amount, sometimes the other type, a later updatedAt."""
    editable = np.flatnonzero([row[2] in ("earned", "spent") for row in made])
    chosen = editable[rng.random(len(editable)) < EDITED]
    factors = rng.uniform(0.5, 1.5, len(chosen))
    flips = rng.random(len(chosen)) < 0.15
    delays = rng.integers(3_600_000, 30 * 86_400_000, len(chosen))
    for index, factor, flip, delay in zip(chosen, factors, flips, delays):
        row = made[index]
        row[3] = max(1, int(row[3] * factor))
        if flip:
            row[2] = "spent" if row[2] == "earned" else "earned"
        row[5] = max(row[4], min(last, row[4] + int(delay)))


class TransactionApi:
    """The upstream's state: every transaction's current version, kept sorted by (updatedAt, id)."""

    def __init__(self, rows: int = 1_000, seed: int = 42, throttle_every: int = 0, retry_after: float = 1):
        made, self.wallets, weights = history(rows, seed)
        self.throttle_every, self.retry_after = throttle_every, retry_after
        made.sort(key=lambda t: (t.updated_at, t.id))
        self._rows = made
        self._keys = [(t.updated_at, t.id) for t in made]
        self._by_id = {t.id: t for t in made}
        self._random = random.Random(seed)
        self._cumulative = np.cumsum(weights).tolist()
        self._last_ms = millis(END)
        self._lock = threading.Lock()
        self.requests = 0
        self.throttled = 0
        self.log: deque[dict] = deque(maxlen=1_000)   # the latest requests' query parameters

    def transactions(self) -> list[dict]:
        """A snapshot of every transaction as the API serves it."""
        with self._lock:
            return [t.as_json() for t in self._rows]

    def page(self, since: str | None, cursor: str | None, limit: int) -> dict:
        """Rows with updatedAt >= since, after the cursor's row, in (updatedAt, id) order."""
        with self._lock:
            start = bisect.bisect_left(self._keys, (since,)) if since else 0
            if cursor:
                start = max(start, bisect.bisect_right(self._keys, _decode(cursor)))
            items = self._rows[start:start + limit]
            more = start + limit < len(self._rows)
            nxt = _encode(self._keys[start + limit - 1]) if more and items else None
        return {"items": [t.as_json() for t in items],
                "meta": {"itemCount": len(items), "itemsPerPage": limit, "nextCursor": nxt}}

    def admit(self) -> bool:
        """Count a request; False when this one is throttled (every `throttle_every`-th)."""
        with self._lock:
            self.requests += 1
            refused = bool(self.throttle_every) and self.requests % self.throttle_every == 0
            self.throttled += refused
            return not refused

    def advance(self, events: int = 1) -> None:
        """`events` new things happen now: users earn, spend and ask for payouts, payouts get paid, a
        past row is corrected. Stamped with the wall clock, each later than the one before."""
        with self._lock:
            for _ in range(events):
                self._last_ms = max(self._last_ms + 1, millis(datetime.now(timezone.utc)))
                now = self._last_ms
                if self._random.random() < 0.1:
                    self._correct(now)
                    continue
                user = self._random.choices(self.wallets.users, cum_weights=self._cumulative)[0]
                draw = self._random.choices(range(4), weights=DRAWS)[0]
                cents = max(1, int(self._random.lognormvariate(np.log(2_500), 0.9)))
                kind, amount = self.wallets.act(user, draw, cents, now)
                ident = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
                self._put(Txn(ident, user, kind, amount, stamp(now), stamp(now)))

    def _correct(self, now: int) -> None:
        """A past earned/spent row gets a new amount (and, now and then, the other type)."""
        old = self._rows[self._random.randrange(len(self._rows))]
        if old.type not in ("earned", "spent"):
            return
        kind = old.type if self._random.random() >= 0.15 else ("spent" if old.type == "earned" else "earned")
        cents = max(1, int(old.cents * self._random.uniform(0.5, 1.5)))
        index = bisect.bisect_left(self._keys, (old.updated_at, old.id))
        del self._rows[index], self._keys[index]
        self._put(old._replace(type=kind, cents=cents, updated_at=stamp(now)))

    def _put(self, txn: Txn) -> None:
        self._rows.append(txn)   # stamped now: later than every row held, so the order stays sorted
        self._keys.append((txn.updated_at, txn.id))
        self._by_id[txn.id] = txn

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) for one GET."""
        if path.rstrip("/") != "/transactions":
            return 404, {"error": f"no route {path}; try /transactions"}, {}
        self.log.append(params)
        if not self.admit():
            return 429, {"error": "too many requests"}, {"Retry-After": f"{self.retry_after:g}"}
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
            if not 1 <= limit <= MAX_LIMIT:
                raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
            since = _since(params["updatedSince"]) if params.get("updatedSince") else None
            return 200, self.page(since, params.get("cursor") or None, limit), {}
        except ValueError as exc:
            return 400, {"error": str(exc)}, {}


def _since(text: str) -> str:
    """An ISO timestamp in any offset as the API's text, cut to the millisecond (the filter is inclusive,
    so cutting only ever re-reads a row, never skips one)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"updatedSince {text!r} is not an ISO timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return stamp(millis(moment))


def _encode(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("|".join(key).encode()).decode()


def _decode(token: str) -> tuple[str, str]:
    try:
        updated, ident = base64.urlsafe_b64decode(token.encode()).decode().split("|")
    except (ValueError, UnicodeError):
        raise ValueError(f"cursor {token!r} is not one this API gave out") from None
    return updated, ident


def _handler(api: TransactionApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive: a poll of many pages reuses one connection

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            status, body, headers = api.answer(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)))
            data = json.dumps(body, separators=(",", ":")).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args) -> None:   # quiet
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Upstream:
    """A running Transaction API: `url`, its state `api`, and `stop()` (also a context manager)."""

    def __init__(self, api: TransactionApi, port: int = 0, host: str = "127.0.0.1",
                 arrive_every: float | None = None, arrive_batch: int = 5):
        self.api = api
        self._server = _Server((host, port), _handler(api))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                          name="ledger-upstream", daemon=True)]
        if arrive_every:
            self._threads.append(threading.Thread(target=self._arrivals, args=(arrive_every, arrive_batch),
                                                  name="ledger-upstream-arrivals", daemon=True))
        for thread in self._threads:
            thread.start()

    def _arrivals(self, every: float, batch: int) -> None:
        while not self._stopping.wait(every):
            self.api.advance(batch)

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_upstream(port: int = 0, *, rows: int = 1_000, seed: int = 42, throttle_every: int = 0,
                   retry_after: float = 1, arrive_every: float | None = None, arrive_batch: int = 5,
                   host: str = "127.0.0.1") -> Upstream:
    """Start the Transaction API on host:port (a free port by default); the caller stops it."""
    api = TransactionApi(rows, seed, throttle_every=throttle_every, retry_after=retry_after)
    return Upstream(api, port, host, arrive_every=arrive_every, arrive_batch=arrive_batch)


def prepare(project_dir: Path, rows: int, seed: int = 42) -> dict[str, int]:
    """Write the upstream's settings into the project; its transactions are made again from them."""
    settings = {"rows": rows, "seed": seed, "throttle_every": 30, "retry_after": 1,
                "arrive_every": 4.0, "arrive_batch": 5}
    path = Path(project_dir) / SETTINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return {"transactions (upstream)": rows}


@contextmanager
def serve_project(project_dir: Path, port: int = 0, live: bool = False) -> Iterator[str]:
    """Serve the project's upstream (as `prepare` set it up) while the block runs; yields its URL.
    New transactions arrive on their own only when `live` (a one-off load sees the history alone)."""
    settings = json.loads((Path(project_dir) / SETTINGS).read_text(encoding="utf-8"))
    if not live:
        settings["arrive_every"] = None
    with serve_upstream(port, **settings) as upstream:
        yield upstream.url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?", help="the project folder (settings in DIR/data)")
    parser.add_argument("--rows", type=int, default=200_000, help="transactions in the history")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--serve", type=int, metavar="PORT", help="serve the Transaction API on PORT")
    args = parser.parse_args(argv)
    if args.serve is None:
        if args.dir is None:
            parser.error("give the project folder DIR, or --serve PORT")
        print(prepare(args.dir, args.rows, args.seed))
        return
    context = serve_project(args.dir, args.serve, live=True) if args.dir else _served(args)
    with context as url:
        print(f"Transaction API at {url}/transactions  (export {API_URL_ENV}={url}); Ctrl-C stops it", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


@contextmanager
def _served(args) -> Iterator[str]:
    with serve_upstream(args.serve, rows=args.rows, seed=args.seed, arrive_every=4.0) as upstream:
        yield upstream.url


if __name__ == "__main__":
    main()
