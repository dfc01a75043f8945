"""The api benchmark's floor: a bare FastAPI app doing the ledger lookup with one hand-written
DuckDB statement, under the same uvicorn as `tally serve`. `python -m bench.api_floor DB PORT`."""

from __future__ import annotations

import sys
import threading

import duckdb
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

LOOKUP = ('SELECT user_id, earned, spent, payout, "paidOut", balance, pending FROM ledger_users '
          "WHERE user_id = ?")


def app_for(database: str) -> FastAPI:
    connection = duckdb.connect(database, read_only=True)
    local = threading.local()   # a DuckDB cursor per worker thread, as Tally keeps them
    app = FastAPI()

    @app.get("/static")
    def static() -> Response:
        return Response(b'{"ok": true}', media_type="application/json")

    @app.get("/users/{user_id}")
    def user(user_id: str) -> dict:
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            cursor = local.cursor = connection.cursor()
        row = cursor.execute(LOOKUP, [user_id]).fetchone()
        if row is None:
            raise HTTPException(404, "no such user")
        names = ("userId", "earned", "spent", "payout", "paidOut", "balance", "pending")
        return {name: (str(value) if name != "userId" else value) for name, value in zip(names, row)}

    return app


if __name__ == "__main__":
    uvicorn.run(app_for(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
