"""TPC-DS queries as Tally queries: each case names the official query and builds the same rows from Tally.

A case's `tally(project)` returns the official query's rows, columns in its SELECT order. Where a
query needs something Tally does not have (a window, a UNION of groupings, a pivot), the case
says so in `note` and does that last step in Python over Tally's aggregates; the aggregates are
always Tally's. docs/tpcds.md lists the cases and the queries left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Case:
    number: int
    tally: Callable[..., list[tuple]]
    # columns holding a SQL sum: SQL gives NULL over no rows, Tally 0 (docs/tpcds.md, "Sums over no rows")
    sums: tuple[int, ...] = ()
    note: str = ""
    # a documented edit of the official text (a parameter no row matches at the scale tested)
    edit: tuple[str, str] | None = None
    label: str = ""   # the test id when it is not qN

    @property
    def id(self) -> str:
        return self.label or f"q{self.number}"


def rows(project, metrics, by=(), where=None, order=None, limit=None) -> list[tuple]:
    """Tally's answer as tuples: the `by` columns, then the metrics."""
    table = project.query(list(metrics), by=list(by), where=where, order_by=order, limit=limit)
    names = [*by, *metrics]
    return [tuple(r[n] for n in names) for r in table.to_pylist()]


def one(project, metrics, where=None) -> tuple:
    (row,) = rows(project, metrics, where=where)
    return row


def _nulls_first(*values):
    return tuple((v is not None, v) for v in values)


# -- the cases ----------------------------------------------------------------------------------------

def q3(p):
    return rows(p, ["ext_sales_price"], ["d_year", "i_brand_id", "i_brand"], "i_manufact_id = 128 and d_moy = 11",
                ["d_year", "-ext_sales_price", "i_brand_id"], 100)


def q7(p):
    return rows(p, ["avg_quantity", "avg_list_price", "avg_coupon_amt", "avg_sales_price"], ["i_item_id"],
                "cd_gender = 'M' and cd_marital_status = 'S' and cd_education_status = 'College' "
                "and (p_channel_email = 'N' or p_channel_event = 'N') and d_year = 2000 and i_item_sk is not null",
                ["i_item_id"], 100)


def _q13_q48_where(demographics, states, household=False):
    people = " or ".join(
        f"(cd_marital_status = '{m}' and cd_education_status = '{e}' and ss_sales_price between {lo} and {hi}"
        + (f" and hd_dep_count = {dep})" if household else ")")
        for m, e, lo, hi, dep in demographics)
    places = " or ".join(f"(ca_country = 'United States' and ca_state in {s} and ss_net_profit between {lo} and {hi})"
                         for s, lo, hi in states)
    return f"s_store_sk is not null and d_year = {{year}} and ({people}) and ({places})"


def q13(p):
    where = _q13_q48_where(
        [("M", "Advanced Degree", "100.00", "150.00", 3), ("S", "College", "50.00", "100.00", 1),
         ("W", "2 yr Degree", "150.00", "200.00", 1)],
        [(("TX", "OH", "TX"), 100, 200), (("OR", "NM", "KY"), 150, 300), (("VA", "TX", "MS"), 50, 250)],
        household=True).format(year=2001)
    return [one(p, ["avg_quantity", "avg_ext_sales_price", "avg_ext_wholesale_cost", "ext_wholesale_cost"], where)]


def q19(p):
    # SUBSTRING(zip, 1, 5) <> ...: every zip in TPC-DS has 5 characters (the test checks), so plain <>
    return rows(p, ["ext_sales_price"], ["i_brand_id", "i_brand", "i_manufact_id", "i_manufact"],
                "i_manager_id = 8 and d_moy = 11 and d_year = 1998 and current_zip <> s_zip",
                ["-ext_sales_price", "i_brand", "i_brand_id", "i_manufact_id", "i_manufact"], 100)


def q27(p):
    where = ("cd_gender = 'M' and cd_marital_status = 'S' and cd_education_status = 'College' "
             "and d_year = 2002 and s_state = 'TN' and i_item_sk is not null")
    metrics = ["avg_quantity", "avg_list_price", "avg_coupon_amt", "avg_sales_price"]
    out = [(item, state, 0, *m) for item, state, *m in rows(p, metrics, ["i_item_id", "s_state"], where)]
    out += [(item, None, 1, *m) for item, *m in rows(p, metrics, ["i_item_id"], where)]
    out += [(None, None, 1, *one(p, metrics, where))]
    return sorted(out, key=lambda r: _nulls_first(r[0], r[1]))[:100]


def q28(p):
    buckets = [(0, 5, 8, 459, 57), (6, 10, 90, 2323, 31), (11, 15, 142, 12214, 79), (16, 20, 135, 6071, 38),
               (21, 25, 122, 836, 17), (26, 30, 154, 7326, 7)]
    row = ()
    for lo, hi, price, coupon, cost in buckets:
        row += one(p, ["avg_list_price", "list_prices", "distinct_list_prices"],
                   f"ss_quantity between {lo} and {hi} and (ss_list_price between {price} and {price + 10} "
                   f"or ss_coupon_amt between {coupon} and {coupon + 1000} "
                   f"or ss_wholesale_cost between {cost} and {cost + 20})")
    return [row]


def q42(p):
    return rows(p, ["ext_sales_price"], ["d_year", "i_category_id", "i_category"],
                "i_manager_id = 1 and d_moy = 11 and d_year = 2000",
                ["-ext_sales_price", "d_year", "i_category_id", "i_category"], 100)


DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def q43(p):
    sums: dict[tuple, dict] = {}
    for name, store_id, day, value in rows(p, ["sales_price"], ["s_store_name", "s_store_id", "d_day_name"],
                                           "s_gmt_offset = -5 and d_year = 2000"):
        sums.setdefault((name, store_id), {})[day] = value
    return sorted((*key, *(days.get(d) for d in DAYS)) for key, days in sums.items())[:100]


def _ticket_where(dates: str) -> str:
    return (f"{dates} and (hd_dep_count = 4 or hd_vehicle_count = 3) and d_year in (1999, 2000, 2001) "
            "and s_city in ('Fairview', 'Midway') and current_city <> bought_city")


TICKET_BY = ["c_last_name", "c_first_name", "current_city", "bought_city", "ss_ticket_number"]


def q46(p):
    out = rows(p, ["coupon_amt", "net_profit"], TICKET_BY, _ticket_where("d_dow in (6, 0)"))
    return sorted(out, key=lambda r: _nulls_first(*r[:5]))[:100]


def q48(p):
    where = _q13_q48_where(
        [("M", "4 yr Degree", "100.00", "150.00", None), ("D", "2 yr Degree", "50.00", "100.00", None),
         ("S", "College", "150.00", "200.00", None)],
        [(("CO", "OH", "TX"), 0, 2000), (("OR", "MN", "KY"), 150, 3000), (("VA", "CA", "MS"), 50, 25000)]
    ).format(year=2000)
    return [one(p, ["quantity"], where)]


def q52(p):
    return rows(p, ["ext_sales_price"], ["d_year", "i_brand_id", "i_brand"],
                "i_manager_id = 1 and d_moy = 11 and d_year = 2000", ["d_year", "-ext_sales_price", "i_brand_id"], 100)


ITEM_GROUPS = ("((i_category in ('Books', 'Children', 'Electronics') and i_class in ('personal', 'portable', "
               "'reference', 'self-help') and i_brand in ('scholaramalgamalg #14', 'scholaramalgamalg #7', "
               "'exportiunivamalg #9', 'scholaramalgamalg #9')) or (i_category in ('Women', 'Music', 'Men') and "
               "i_class in ('accessories', 'classical', 'fragrances', 'pants') and i_brand in ('amalgimporto #1', "
               "'edu packscholar #1', 'exportiimporto #1', 'importoamalg #1')))")
MONTHS_2000 = "d_month_seq between 1200 and 1211 and s_store_sk is not null"


def _window_avg(groups: list[tuple]) -> list[tuple]:
    """(key, period, sum) -> (key, sum, avg of the key's sums) where the sum is off its average by > 10%."""
    by_key: dict = {}
    for key, _, total in groups:
        by_key.setdefault(key, []).append(total)
    out = []
    for key, _, total in groups:
        average = sum(by_key[key]) / len(by_key[key])
        if average > 0 and abs(total - average) / average > Decimal("0.1"):
            out.append((key, total, average))
    return out


def q53(p):
    groups = rows(p, ["sales_price"], ["i_manufact_id", "d_qoy"], f"{MONTHS_2000} and {ITEM_GROUPS}")
    return sorted(_window_avg(groups), key=lambda r: (r[2], r[1], r[0]))[:100]


def q55(p):
    return rows(p, ["ext_sales_price"], ["i_brand_id", "i_brand"], "i_manager_id = 28 and d_moy = 11 and d_year = 1999",
                ["-ext_sales_price", "i_brand_id"], 100)


def q61(p):
    return [one(p, ["promotion_sales", "ext_sales_price", "promotion_share"],
                "current_gmt_offset = -5 and i_category = 'Jewelry' and s_gmt_offset = -5 "
                "and d_year = 1998 and d_moy = 11")]


def q63(p):
    groups = rows(p, ["sales_price"], ["i_manager_id", "d_moy"], f"{MONTHS_2000} and {ITEM_GROUPS}")
    return sorted(_window_avg(groups), key=lambda r: (r[0], r[2], r[1]))[:100]


def q68(p):
    out = rows(p, ["ext_sales_price", "ext_tax", "ext_list_price"], TICKET_BY, _ticket_where("d_dom between 1 and 2"))
    return sorted(out, key=lambda r: _nulls_first(r[0], r[4]))[:100]


def _q88_where(hour: int, minute: str, store: str) -> str:
    return (f"t_hour = {hour} and t_minute {minute} and ((hd_dep_count = 4 and hd_vehicle_count <= 6) or "
            "(hd_dep_count = 2 and hd_vehicle_count <= 4) or (hd_dep_count = 0 and hd_vehicle_count <= 2)) "
            f"and s_store_name = '{store}'")


def _q88(store):
    def run(p):
        slots = [(8, ">= 30"), (9, "< 30"), (9, ">= 30"), (10, "< 30"), (10, ">= 30"), (11, "< 30"), (11, ">= 30"),
                 (12, "< 30")]
        return [tuple(one(p, ["sales"], _q88_where(hour, minute, store))[0] for hour, minute in slots)]
    return run


def _q96(store):
    def run(p):
        return [one(p, ["sales"], f"t_hour = 20 and t_minute >= 30 and hd_dep_count = 7 and s_store_name = '{store}'")]
    return run


def q98(p):
    where = "i_category in ('Sports', 'Books', 'Home') and d_date between '1999-02-22' and '1999-03-24'"
    items = rows(p, ["ext_sales_price"], ["i_item_id", "i_item_desc", "i_category", "i_class", "i_current_price"],
                 where)
    classes = dict(rows(p, ["ext_sales_price"], ["i_class"], where))   # the window's partition totals
    out = [(*r, r[5] * Decimal("100.0000") / classes[r[3]]) for r in items]
    return sorted(out, key=lambda r: _nulls_first(r[2], r[3], r[0], r[1], r[6]))


# The tested scale has one store, 'ought': q88 and q96 ask for 'ese' and count 0; the edited copies
# ask for 'ought' so that the counts are not all zero.
CASES = [
    Case(3, q3, sums=(3,)),
    Case(7, q7),
    Case(13, q13, sums=(3,)),
    Case(19, q19, sums=(4,), note="SUBSTRING(zip, 1, 5): every zip has 5 characters, compared whole"),
    Case(27, q27, note="GROUP BY with subtotals (UNION ALL of 3 groupings): 3 Tally queries stacked"),
    Case(28, q28, note="6 filtered sub-selects side by side: 6 Tally queries"),
    Case(42, q42, sums=(3,)),
    Case(43, q43, sums=(2, 3, 4, 5, 6, 7, 8), note="sum(CASE day) pivot: one query by d_day_name, pivoted"),
    Case(46, q46, sums=(5, 6), note="ORDER BY ... NULLS FIRST: sorted after Tally"),
    Case(48, q48, sums=(0,)),
    Case(52, q52, sums=(3,)),
    Case(53, q53, note="avg(sum()) OVER (PARTITION BY ...): window and filter computed after Tally"),
    Case(55, q55, sums=(2,)),
    Case(61, q61, sums=(0, 1)),
    Case(63, q63, note="avg(sum()) OVER (PARTITION BY ...): window and filter computed after Tally"),
    Case(68, q68, sums=(5, 6, 7), note="ORDER BY ... NULLS FIRST: sorted after Tally"),
    Case(88, _q88("ese")),
    Case(88, _q88("ought"), edit=("'ese'", "'ought'"), label="q88_ought"),
    Case(96, _q96("ese")),
    Case(96, _q96("ought"), edit=("'ese'", "'ought'"), label="q96_ought"),
    Case(98, q98, sums=(5, 6), note="sum() OVER (PARTITION BY i_class): a second Tally query by i_class"),
]
