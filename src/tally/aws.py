"""AWS Lambda entry point: rebuild one category of rollups for an environment (profile) and a date range.

The event is the statistics job's::

    {"environment": "production|staging|development",
     "statisticsType": "user|business|system|financial",
     "dateRange": {"start": "2024-01-01", "end": "2024-01-31"}}

`environment` names the profile applied to tally.yml, `statisticsType` the rollup category, and
`dateRange` the local days to rebuild, both ends included (the seed's "2024-01-31" means all of
January): the handler runs `tally.rollups.build` -- what `tally --profile ENV rollup build --category C
--from START --to END+1` runs -- over [start, end + 1 day). Keys it doesn't know are ignored
and listed under "ignored" in the answer. The project folder is $TALLY_PROJECT, else the current
directory. An API Gateway proxy event (the same JSON as its `body`) gets an API Gateway answer.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.engine.timegrid import FIRST_DATE, LAST_DATE
from tally.errors import ConfigError, TallyError
from tally.redaction import redact_text

ENVIRONMENTS = ("production", "staging", "development")
STATISTICS_TYPES = ("user", "business", "system", "financial")
EVENT_KEYS = ("environment", "statisticsType", "dateRange")
RANGE_KEYS = ("start", "end")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
LOGGER = logging.getLogger("tally.aws")


class BadEvent(TallyError):
    """The event is not a statistics request: says which key is wrong and why."""

    code = "bad_event"
    http_status = 400


@dataclass(frozen=True)
class Request:
    environment: str
    statistics_type: str
    start: dt.date
    end: dt.date                     # inclusive, as the event says
    ignored: tuple[str, ...] = ()

    @property
    def date_range(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @property
    def rebuild(self) -> dict:
        """The half-open local range rebuilt: [start, end + 1 day)."""
        return {"from": self.start.isoformat(), "to": (self.end + dt.timedelta(days=1)).isoformat()}


def lambda_handler(event: Any, context: Any = None) -> dict:
    """Rebuild the event's statistics; answer {"statusCode", "body"}, never raise."""
    try:
        return _handle(event, context)
    except Exception as exc:  # noqa: BLE001 -- last resort: even a failing log line must not raise
        message = redact_text(f"{type(exc).__name__}: {_first_line(exc)}")
        return _answer(500, _error("internal_error", message), _is_proxy(event))


def _handle(event: Any, context: Any) -> dict:
    clock = time.perf_counter()
    log = EventLog(getattr(context, "aws_request_id", None))
    proxy = _is_proxy(event)
    try:
        request = parse_event(event)
    except BadEvent as exc:
        log.warning("bad_event", message=exc.message)
        return _answer(400, _error(exc.code, exc.message), proxy)
    except Exception as exc:  # an event no check foresaw is still the caller's mistake: 400, one line
        message = redact_text(f"event: cannot be read ({type(exc).__name__}: {_first_line(exc)})")
        log.warning("bad_event", message=message)
        return _answer(400, _error("bad_event", message), proxy)
    try:
        body = run(request, project_folder(), log, context)
    except TallyError as exc:
        log.error("failed", code=exc.code, message=redact_text(exc.message), seconds=_since(clock))
        return _answer(exc.http_status, _error(exc.code, redact_text(exc.message)), proxy)
    except Exception as exc:  # the caller gets one line; the log gets the type and where it happened
        message = redact_text(f"{type(exc).__name__}: {_first_line(exc)}")
        log.error("failed", code="internal_error", error_type=type(exc).__name__, message=message,
                  traceback=redact_text("".join(traceback.format_exception(exc))), seconds=_since(clock))
        return _answer(500, _error("internal_error", message), proxy)
    body["seconds"] = _since(clock)
    log.info("complete", rollups=len(body["rollups"]), periods=sum(r["periods"] for r in body["rollups"]),
             rows=body["rows"], seconds=body["seconds"])
    return _answer(200, body, proxy)


def run(request: Request, folder: Path, log: EventLog, context: Any = None) -> dict:
    """Load the project with the environment's profile and rebuild the category's rollups over the range."""
    from tally.app import Project, read_project
    from tally.rollups import build
    from tally.redaction import redact_url

    remaining = getattr(context, "get_remaining_time_in_millis", None)
    log.info("start", environment=request.environment, statisticsType=request.statistics_type,
             dateRange=request.date_range, rebuild=request.rebuild, project=str(folder),
             ignored=list(request.ignored), remaining_ms=remaining() if callable(remaining) else None)
    _check_folder(folder)
    # a rebuild computes from the source tables: never let the engine answer from the rollups being rebuilt
    project = Project(read_project(folder, request.environment), use_rollups=False)
    try:
        def progress(name: str, fraction: float, note: str) -> None:
            log.info("progress", rollup=name, fraction=round(fraction, 3), note=note)

        results = build(project, category=request.statistics_type, start=request.rebuild["from"],
                        end=request.rebuild["to"], progress=progress)
        warehouse = redact_url(project.warehouse_url)
    finally:
        project.close()
    rollups = [{"name": r.rollup, "table": r.table, "mode": r.mode, "periods": r.periods, "rows": r.rows,
                "seconds": round(r.seconds, 3)} for r in results]
    log.info("built", warehouse=warehouse, rollups=rollups)
    body = {"status": "ok", "environment": request.environment, "statisticsType": request.statistics_type,
            "dateRange": request.date_range, "rebuilt": request.rebuild, "rollups": rollups,
            "rows": sum(r["rows"] for r in rollups)}
    if request.ignored:
        body["ignored"] = list(request.ignored)
    return body


def project_folder() -> Path:
    """$TALLY_PROJECT, else the current directory."""
    return Path(os.environ.get("TALLY_PROJECT") or Path.cwd())


def _check_folder(folder: Path) -> None:
    if folder.is_file():
        return
    where = "TALLY_PROJECT" if os.environ.get("TALLY_PROJECT") else "the current directory (TALLY_PROJECT is unset)"
    if not folder.is_dir():
        raise ConfigError(f"project folder {folder} does not exist (from {where})")
    if not (folder / "tally.yml").is_file():
        raise ConfigError(f"no tally.yml in project folder {folder} (from {where})")


# -- the event -----------------------------------------------------------------------------------


def parse_event(event: Any) -> Request:
    """The request an event asks for, or BadEvent naming every problem found."""
    event = _unwrap(event)
    if not isinstance(event, dict):
        raise BadEvent(f"event: expected a JSON object with {', '.join(EVENT_KEYS)}, got {_show(event)}")
    problems: list[str] = []
    environment = _choice(event, "environment", ENVIRONMENTS, problems)
    statistics_type = _choice(event, "statisticsType", STATISTICS_TYPES, problems)
    dates = event.get("dateRange")
    start = end = None
    ignored = [str(k) for k in event if k not in EVENT_KEYS]
    if "dateRange" not in event:
        problems.append("dateRange: missing (an object with start and end, YYYY-MM-DD, end included)")
    elif not isinstance(dates, dict):
        problems.append(f"dateRange: expected an object with start and end, got {_show(dates)}")
    else:
        start, end = (_date(dates, key, problems) for key in RANGE_KEYS)
        ignored += [f"dateRange.{k}" for k in dates if k not in RANGE_KEYS]
        if start and end and start > end:
            problems.append(f"dateRange: start {start} is after end {end} (both days are included)")
    if problems:
        raise BadEvent("; ".join(problems))
    return Request(environment, statistics_type, start, end, tuple(ignored))


def _is_proxy(event: Any) -> bool:
    """An API Gateway proxy event: the request JSON is in `body`, the answer's body must be text."""
    return isinstance(event, dict) and "body" in event and not any(k in event for k in EVENT_KEYS)


def _unwrap(event: Any) -> Any:
    """The request object from a direct invocation, a JSON string, or an API Gateway proxy event."""
    where = "event"
    if _is_proxy(event):
        where, encoded, event = "body", event.get("isBase64Encoded"), event["body"]
        if encoded and isinstance(event, str):
            try:
                event = base64.b64decode(event, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise BadEvent("body: isBase64Encoded is set but the body is not base64 of UTF-8 text") from None
        if event is None:
            raise BadEvent(f"body: empty; expected a JSON object with {', '.join(EVENT_KEYS)}")
    if isinstance(event, (bytes, bytearray)):
        event = event.decode(errors="replace")
    if isinstance(event, str):
        try:
            return json.loads(event)
        except json.JSONDecodeError as exc:
            raise BadEvent(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except RecursionError:
            raise BadEvent(f"{where}: JSON nested too deeply to read") from None
    return event


def _choice(event: dict, key: str, allowed: tuple[str, ...], problems: list[str]) -> str | None:
    if key not in event:
        problems.append(f"{key}: missing (one of {', '.join(allowed)})")
        return None
    value = event[key]
    if not isinstance(value, str) or value not in allowed:
        problems.append(f"{key}: {_show(value)} is not one of {', '.join(allowed)}")
        return None
    return value


def _date(dates: dict, key: str, problems: list[str]) -> dt.date | None:
    if key not in dates:
        problems.append(f"dateRange.{key}: missing (YYYY-MM-DD)")
        return None
    value = dates[key]
    if isinstance(value, str) and DATE.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            # the rebuild runs to the day after `end`: that day must be a supported date too
            if FIRST_DATE.date() <= day < LAST_DATE.date():
                return day
            problems.append(f"dateRange.{key}: {value} is out of range (an event's days run from "
                            f"{FIRST_DATE.date()} to {LAST_DATE.date() - dt.timedelta(days=1)})")
            return None
    problems.append(f"dateRange.{key}: {_show(value)} is not a date (YYYY-MM-DD)")
    return None


def _show(value: Any) -> str:
    """A value as it appears in an error: JSON-ish, its type when it's a container, cut when long."""
    if isinstance(value, (dict, list, tuple)):
        return f"a {'JSON object' if isinstance(value, dict) else 'JSON array'}"
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the answer and the log ----------------------------------------------------------------------


def _error(code: str, message: str) -> dict:
    return {"status": "error", "error": {"code": code, "message": message}}


def _answer(status: int, body: dict, proxy: bool) -> dict:
    if proxy:
        return {"statusCode": status, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(body, default=str)}
    return {"statusCode": status, "body": body}


def _since(clock: float) -> float:
    return round(time.perf_counter() - clock, 3)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "(no message)"


class JsonLines(logging.Handler):
    """Each record as one JSON object on one stdout line: what CloudWatch Logs Insights parses."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
                     "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
                     **getattr(record, "fields", {})}
            sys.stdout.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


class EventLog:
    """Named events with fields, logged through `tally.aws` as JSON lines tagged with the request id."""

    def __init__(self, request_id: str | None = None):
        self.request_id = request_id
        if not any(isinstance(h, JsonLines) for h in LOGGER.handlers):
            LOGGER.addHandler(JsonLines())
            LOGGER.propagate = False  # Lambda's root handler would prefix each line and break the JSON
            if LOGGER.level == logging.NOTSET:
                LOGGER.setLevel(logging.INFO)

    def _log(self, level: int, event: str, fields: dict) -> None:
        LOGGER.log(level, event, extra={"fields": {"request_id": self.request_id, **fields}})

    def info(self, event: str, **fields) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields) -> None:
        self._log(logging.ERROR, event, fields)
