"""Reading a ledger: one entity (stored, or live as of a past time) and filtered, ordered pages of entities."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from tally.errors import ExpressionError, NotFoundError, QueryError
from tally.ledgers import live, store
from tally.ledgers.definition import definition
from tally.project.expr import parse_row_expr
from tally.project.exprtypes import warehouse_kind

MAX_PAGE = 10_000
MAX_OFFSET = 10 ** 9   # past any page a client reads; a larger number overflows the warehouse's BIGINT
PAGES_KEPT = 256   # compiled listing queries kept per warehouse (the API pages through the same few)


def entity(project, ledger: str, entity, as_of=None) -> dict:
    """The entity's buckets and formulas: as stored, or as of `as_of` (rows whose time is at or before
    it, computed live). NotFoundError (404) for an unknown ledger or an entity without rows."""
    ldef = definition(project, ledger)
    if as_of is not None and not ldef.engine.catalog.model(ldef.model).time:
        raise QueryError(f"ledger {ledger!r}: model {ldef.model!r} has no time column, so there is no as-of answer")
    warehouse = project.warehouse
    value = _typed(entity, ldef.entity_type)
    built = _built(project, ldef)
    if as_of is None and built:
        row = store.lookup(warehouse, ldef, value) if value is not None else None
    else:
        end = _instant(project, as_of) + dt.timedelta(microseconds=1) if as_of is not None else None
        rows = live.values(ldef, [value], end=end).to_pylist() if value is not None else []
        row = rows[0] if rows else None
    if row is None:
        when = f" at or before {as_of}" if as_of is not None else ""
        raise NotFoundError(f"ledger {ledger!r}: no {ldef.entity} {entity!r} (it has no rows{when})")
    return store.public(row, ldef)


def entity_in_memory(project, ledger: str, entity) -> dict | None:
    """The stored entity when it is answered from memory with no I/O at all (a sole writer's current
    index: see store.lookup), else None: then ask `entity`, which reads (and may raise)."""
    if "warehouse" not in project.__dict__:
        return None
    ldef = project.__dict__.get("_ledger_defs", {}).get(ledger)
    if ldef is None or ldef.name not in project.__dict__.get("_ledgers_built", ()):
        return None
    answered, row = store.indexed(project.warehouse, ldef, _typed(entity, ldef.entity_type))
    return store.public(row, ldef) if answered and row is not None else None


def listing(project, ledger: str, where=None, order=None, limit: int = 100, offset: int = 0) -> list[dict]:
    """Stored entities filtered by `where` and sorted by `order` (over the entity, bucket and formula
    names: `-balance`, `balance desc`), one page of `limit` rows from `offset`."""
    ldef = definition(project, ledger)
    _check_page(limit, offset)
    if where is not None and not isinstance(where, str):
        raise QueryError(f"where must be text (like \"balance > 100\"), not {where!r}")
    warehouse = project.warehouse
    if not _built(project, ldef):
        raise NotFoundError(f"ledger {ledger!r} has not been refreshed yet: run `tally ledger refresh {ledger}`")
    cache = warehouse.__dict__.setdefault("_ledger_pages", {})
    key = (ldef.table, tuple(ldef.stored_columns), where, str(order), limit, offset)
    if key not in cache:
        if len(cache) >= PAGES_KEPT:
            cache.pop(next(iter(cache)))
        cache[key] = warehouse.compile(_page(warehouse, ldef, where, order, limit, offset))
    return warehouse.run(cache[key]).to_pylist()


def _page(warehouse, ldef, where, order, limit: int, offset: int):
    """The Ibis expression of one page of `listing`."""
    from tally.engine.translate import to_condition

    table = warehouse.table(ldef.table)
    names = [ldef.entity, *ldef.columns]
    expr = table.select(names)
    if where is not None and str(where).strip():
        tree = _parse_where(where, names)
        _check_kinds(where, tree, {name: warehouse_kind(expr[name].type()) for name in names})
        expr = expr.filter(to_condition(tree, lambda name: expr[name]))
    ordered = _order(order, names)
    keys = [expr[n].desc(nulls_first=False) if desc else expr[n].asc(nulls_first=False) for n, desc in ordered]
    if all(n != ldef.entity for n, _ in ordered):
        keys.append(expr[ldef.entity].asc())   # a stable order: pages neither repeat nor skip an entity
    return expr.order_by(keys).limit(limit, offset=offset)


def _built(project, ldef) -> bool:
    """Whether the ledger has been refreshed (its table and state exist); once seen, not asked again
    (a lookup is then one query: what the API's ledger routes serve)."""
    seen = project.__dict__.setdefault("_ledgers_built", set())
    if ldef.name not in seen:
        warehouse = project.warehouse
        if warehouse.has_table(ldef.table) and store.load_state(warehouse, ldef) is not None:
            seen.add(ldef.name)
    return ldef.name in seen


def _typed(value, kind):
    """The entity as its column stores it (`"074092"` stays text; `"42"` is 42 for a number column);
    None when it can't be one (so: not found)."""
    if isinstance(value, bool) or value is None:
        return None
    if kind.is_integer():
        text = str(value).strip()
        return int(text) if re.fullmatch(r"[+-]?\d{1,19}", text) else None
    if kind.is_decimal() or kind.is_floating():
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return None
    if kind.is_string():
        return str(value)
    return value


def _instant(project, as_of) -> dt.datetime:
    from tally.engine.timegrid import parse_local

    return parse_local(as_of, ZoneInfo(project.config.timezone), "--as-of")


def _parse_where(text: str, names: list[str]):
    try:
        parsed = parse_row_expr(text)
    except ExpressionError as exc:
        raise ExpressionError(f"--where: {exc.message}") from None
    for ref in parsed.references:
        if ref not in names:
            hint = difflib.get_close_matches(ref, names, n=1)
            raise QueryError(f"--where: unknown name {ref!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; a ledger filters by {', '.join(names)}")
    return parsed.tree


def _check_kinds(text: str, tree, kinds: dict[str, str]) -> None:
    """A true/false filter whose comparisons match the stored columns' kinds (Ibis would raise its own
    type error mid-build: a crash, not a one-line answer)."""
    from tally.project.exprtypes import ANY, Checker

    try:
        Checker(lambda name: kinds.get(name, ANY)).condition(tree)
    except ExpressionError as exc:
        raise ExpressionError(f"--where: {exc.message}") from None


def _order(order, names: list[str]) -> list[tuple[str, bool]]:
    """`-balance`, `balance desc`, `balance asc`, comma-separated or a list; names checked."""
    if order is None:
        return []
    parts = order if isinstance(order, (list, tuple)) else [order]
    found = []
    for part in parts:
        if not isinstance(part, str):
            raise QueryError(f"cannot read order {part!r} (write '-balance' or 'balance desc')")
        for piece in part.split(","):
            words = piece.split()
            if not words:
                continue
            name, desc = (words[0][1:], True) if words[0].startswith("-") else (words[0], False)
            if len(words) == 2 and words[1].lower() in ("asc", "desc"):
                desc = words[1].lower() == "desc"
            elif len(words) > 1:
                raise QueryError(f"cannot read order {piece.strip()!r} (write '-balance' or 'balance desc')")
            if name not in names:
                raise QueryError(f"cannot order by {name!r}: a ledger orders by {', '.join(names)}")
            found.append((name, desc))
    return found


def _check_page(limit, offset) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_PAGE:
        raise QueryError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"offset must be a whole number from 0 to {MAX_OFFSET}, not {offset!r}")
