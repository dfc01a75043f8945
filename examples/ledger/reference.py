"""The seed service's two answers worked out in plain Python from the upstream's transactions.

This is the independent computation the ledger's routes are checked against; it shares no code with Tally.
The rules are seed 003's documented answer (earned 150, spent 50, payout 30, paidOut 20 -> balance 100):
`balance = earned - spent`; payouts are tracked beside it (the original service's code also took
requested payouts off the balance, which its own documented example contradicts); an unknown user has
all zeros.
`GET /aggregatedData/payouts` lists the users with a pending payout (requested more than was paid out),
each with `totalPayout` = everything the user has requested (the seed's example: payout 30, paidOut 20,
totalPayout 30), ordered by userId.

Amounts are Decimals: compare with a JSON body parsed by `json.loads(text, parse_float=Decimal, parse_int=Decimal)`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Iterable

BUCKETS = {"earned": "earned", "spent": "spent", "payout": "payout", "paid_out": "paidOut"}
ZERO = Decimal("0")


def per_user(transactions: Iterable[dict]) -> dict[str, dict[str, Decimal]]:
    """{userId: {"balance", "earned", "spent", "payout", "paidOut"}} over the current version of each row."""
    latest: dict[str, dict] = {}
    for row in transactions:   # a row served twice (edited) counts once, as its latest version
        seen = latest.get(row["id"])
        if seen is None or row["updatedAt"] >= seen["updatedAt"]:
            latest[row["id"]] = row
    users: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(BUCKETS.values(), ZERO))
    for row in latest.values():
        bucket = BUCKETS[row["type"]]
        users[row["userId"]][bucket] += Decimal(str(row["amount"]))
    return {user: {"balance": b["earned"] - b["spent"], **b} for user, b in users.items()}


def aggregated_data(transactions: Iterable[dict], user_id: str) -> dict[str, Decimal]:
    """The body of `GET /aggregatedData/{userId}`."""
    zeros = dict.fromkeys(["balance", "earned", "spent", "payout", "paidOut"], ZERO)
    return per_user(transactions).get(user_id, zeros)


def payouts(transactions: Iterable[dict]) -> list[dict]:
    """The body of `GET /aggregatedData/payouts`: users with a pending payout, by userId."""
    users = per_user(transactions)
    return [{"userId": user, "totalPayout": b["payout"]}
            for user, b in sorted(users.items()) if b["payout"] - b["paidOut"] > 0]
