"""REST APIs: JSON pages fetched with retries and backoff, flattened into one Arrow table."""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterator, Literal
from urllib.parse import urlencode

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from tally.errors import SourceError
from tally.lazy import LazyModule
from tally.redaction import is_secret_name
from tally.sources.config import SourceConfig
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext, dig

httpx = LazyModule("httpx")   # validating a source's options must not load the HTTP client

CAPABILITIES = Capabilities(pushes_cursor=True, text_values=False)

MAX_BACKOFF = 30.0          # seconds: the longest wait our own backoff chooses
MAX_RETRY_AFTER = 300.0     # seconds: a server asking for a longer pause fails the run (the next run retries)
_MISSING = object()

log = logging.getLogger("tally.ingest.http")


class Pagination(BaseOptions):
    """How to ask for the next page. Page and offset paging stop at a page shorter than `size`,
    so `size` must not exceed the most the API returns per page."""

    type: Literal["none", "page", "offset", "cursor", "link"] = "none"
    size: int = Field(100, gt=0)
    size_param: str | None = None     # default `per_page` (page) or `limit` (offset); cursor/link send it if set
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor: str | None = None    # dotted path of the next page's token in the body

    @model_validator(mode="after")
    def _cursor_path(self) -> Pagination:
        if self.type == "cursor" and not self.next_cursor:
            raise ValueError("cursor pagination needs `next_cursor`: the dotted path of the token, e.g. meta.next")
        return self

    @property
    def size_key(self) -> str | None:
        """The query parameter carrying the page size, if one is sent."""
        return self.size_param or {"page": "per_page", "offset": "limit"}.get(self.type)


class Incremental(BaseOptions):
    """Ask only for records past the watermark: sent as the query parameter `param`."""

    param: str
    initial: str | None = None        # sent on the first run, before anything was loaded


class Options(BaseOptions):
    url: str
    params: dict[str, str | int | float | bool] = {}
    headers: dict[str, str] = Field(default={}, repr=False)    # may hold secrets: never shown
    records: str | None = None        # dotted path of the list in the body; None: the body is the list
    fields: dict[str, str] = {}       # column -> dotted path into each record (nested values)
    pagination: Pagination = Pagination()
    incremental: Incremental | None = None
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=0)
    backoff: float = Field(0.5, ge=0)   # first retry waits about this long, doubling after
    max_pages: int = Field(10_000, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {value[:20]!r}")
        return value


def read(options: Options, ctx: ReadContext) -> RawData:
    if options.incremental and not ctx.config.cursor:
        raise SourceError("`incremental` needs the source's `cursor`: the column whose highest value is sent next time")
    rows: list[dict] = []
    with httpx.Client(headers={"Accept": "application/json", "User-Agent": "tally", **options.headers},
                      timeout=options.timeout, follow_redirects=True,
                      event_hooks={"request": [_drop_secrets_off_origin(options)]}) as client:
        pages = 0
        for pages, records in enumerate(_pages(client, options, _first_params(options, ctx.watermark)), start=1):
            rows.extend(_row(record, options.fields) for record in records)
            ctx.progress(len(rows))
    return RawData(arrow=_table(rows, ctx.config), details={"url": shown_url(options.url), "pages": pages})


# headers that say what the client accepts, not who it is: kept when a redirect leaves the API's origin
PLAIN_HEADERS = ("accept", "accept-encoding", "accept-language", "user-agent", "content-type")


def _drop_secrets_off_origin(options: Options):
    """A request hook: a redirect to another origin (scheme, host, port) carries none of the configured
    headers (API keys, tokens); httpx itself strips only Authorization."""
    origin = httpx.URL(options.url)
    configured = [name for name in options.headers if name.lower() not in PLAIN_HEADERS]

    def hook(request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            for name in configured:
                request.headers.pop(name, None)
    return hook


def _first_params(options: Options, watermark: str | None) -> dict[str, Any]:
    params = dict(options.params)
    if options.incremental:
        since = watermark if watermark is not None else options.incremental.initial
        if since is not None:
            params[options.incremental.param] = since
    return params


def _pages(client: httpx.Client, options: Options, params: dict[str, Any]) -> Iterator[list]:
    """Each page's records, following the pagination until the last page (or past the page budget)."""
    paging, url = options.pagination, options.url
    if paging.size_key:
        params[paging.size_key] = paging.size
    page, offset, seen = paging.start_page, 0, set()
    for count in itertools.count(1):
        if count > options.max_pages:
            raise SourceError(f"GET {shown_url(url)}: more than max_pages={options.max_pages} pages; "
                              "raise `max_pages` or narrow the request; nothing was loaded")
        if paging.type == "page":
            params[paging.page_param] = page
        elif paging.type == "offset":
            params[paging.offset_param] = offset
        target = httpx.URL(url).copy_merge_params(params)
        response = fetch(client, target, options)
        body = _json(response, target)
        records = _records(body, options.records, target)
        yield records
        if not records or paging.type == "none" or (paging.size_key and len(records) < paging.size):
            return
        page, offset = page + 1, offset + len(records)
        if paging.type == "cursor":
            token = dig(body, paging.next_cursor, _MISSING)
            if token in (None, "", _MISSING):
                return
            if token == params.get(paging.cursor_param):
                raise SourceError(f"GET {shown_url(target)}: the next cursor repeats the current one; stopping")
            params[paging.cursor_param] = token
        elif paging.type == "link":
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            url, params = str(response.url.join(link)), {}
            if url in seen:
                raise SourceError(f"GET {shown_url(target)}: the `Link` next page was already read ({shown_url(url)})")
            seen.add(url)


def fetch(client: httpx.Client, url: httpx.URL, options: Options) -> httpx.Response:
    """GET, retried on 429, 5xx, timeouts and connection errors; SourceError when it can't succeed."""
    shown = shown_url(url)
    for attempt in range(options.retries + 1):
        wait = None
        try:
            response = client.get(url)
        except httpx.TimeoutException:
            problem = f"timed out after {options.timeout:g} s"
        except httpx.TransportError as exc:
            problem = f"failed ({type(exc).__name__}: {exc})"
        except httpx.RequestError as exc:   # too many redirects, undecodable body: retrying won't help
            raise SourceError(f"GET {shown} failed ({type(exc).__name__}: {exc}); nothing was loaded") from None
        else:
            if response.is_success:
                return response
            problem = f"answered {response.status_code} {response.reason_phrase}"
            if not retryable(response.status_code):
                raise SourceError(f"GET {shown} {problem}{_excerpt(response)}; not retried; nothing was loaded")
            wait = retry_after(response)
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise SourceError(f"GET {shown} {problem} and asks to wait {wait:.0f} s, more than "
                                  f"{MAX_RETRY_AFTER:.0f} s; nothing was loaded, the next run will try again")
        if attempt == options.retries:
            break
        delay = wait if wait is not None else backoff(attempt, options.backoff)
        log.warning("GET %s %s; retry %d of %d in %.1f s", shown, problem, attempt + 1, options.retries, delay)
        time.sleep(delay)
    raise SourceError(f"GET {shown} {problem} (tried {options.retries + 1} times); nothing was loaded")


def retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: about base, 2×base, 4×base … capped."""
    return min(MAX_BACKOFF, base * 2 ** attempt) * random.uniform(0.5, 1.0)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (`Retry-After`: seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0)


def shown_url(url: httpx.URL | str) -> str:
    """The URL safe to print: no user:password, secret-looking query values masked."""
    url = httpx.URL(str(url))
    plain = str(url.copy_with(username=None, password=None, query=None))
    masked = [f"{k}=***" if is_secret_name(k) else urlencode({k: v})
              for k, v in url.params.multi_items()]
    return f"{plain}?{'&'.join(masked)}" if masked else plain


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f": {text}" if text else ""


def _json(response: httpx.Response, url: httpx.URL) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise SourceError(f"GET {shown_url(url)} did not answer JSON ({kind}){_excerpt(response)}") from None


def _records(body: Any, path: str | None, url: httpx.URL) -> list[dict]:
    found = body if path is None else dig(body, path, _MISSING)
    if found is _MISSING:
        keys = f"it has: {', '.join(body)}" if isinstance(body, dict) else f"it is {_kind(body)}"
        raise SourceError(f"GET {shown_url(url)}: the response has no {path!r} (records); {keys}")
    if found is None:
        return []
    if not isinstance(found, list):
        where = f"{path!r}" if path else "the response body"
        raise SourceError(f"GET {shown_url(url)}: {where} is {_kind(found)}, not a list of records "
                          "(set `records` to the dotted path of the list)")
    if not all(isinstance(record, dict) for record in found):
        raise SourceError(f"GET {shown_url(url)}: the records are not all JSON objects")
    return found


def _kind(value: Any) -> str:
    """A JSON value's kind in JSON's words."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _row(record: dict, fields: dict[str, str]) -> dict:
    """The record's own keys plus each `fields` column taken from its dotted path."""
    row = dict(record)
    for column, path in fields.items():
        value = dig(record, path, _MISSING)
        row[column] = None if value is _MISSING else value
    return row


def _table(rows: list[dict], config: SourceConfig) -> pa.Table:
    """One Arrow table; text columns when types are declared (typed by the shared validation)."""
    source_of = {target: source for source, target in config.rename.items()}
    names = list(dict.fromkeys(itertools.chain((source_of.get(c, c) for c in config.columns), *rows)))
    if not names:   # no records and nothing declared: name the keys, so "nothing new" loads nothing
        keys = [*config.primary_key, *([config.cursor] if config.cursor else [])]
        names = list(dict.fromkeys(source_of.get(c, c) for c in keys))
        if not names:
            raise SourceError("the API returned no records and the source names no columns to load; "
                              "declare `columns` (or a `primary_key`)")
    columns = {name: [row.get(name) for row in rows] for name in names}
    if config.columns or not rows:
        return pa.table({name: pa.array([as_text(v) for v in values], pa.string()) for name, values in columns.items()})
    return pa.table({name: _native(values) for name, values in columns.items()})


def as_text(value: Any) -> str | None:
    """A JSON value as the text a CSV would hold: numbers that round-trip, objects as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return repr(value)


def _native(values: list) -> pa.Array:
    """JSON scalars as Arrow infers them; nested values as JSON text; mixed kinds as text."""
    values = [as_text(v) if isinstance(v, (dict, list)) else v for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError):
        return pa.array([as_text(v) for v in values], pa.string())
