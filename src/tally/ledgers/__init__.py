"""Ledgers: per-entity buckets and formulas (balance, earned, spent), stored, refreshed as rows load, verified."""

from tally.errors import api_boundary
from tally.ledgers.lookup import entity, entity_in_memory, listing
from tally.ledgers.refresh import LedgerResult, after_ingest, refresh
from tally.ledgers.verify import verify

# the public API raises only TallyError
refresh, entity, listing, verify, after_ingest = (api_boundary(f) for f in (refresh, entity, listing, verify,
                                                                           after_ingest))

__all__ = ["LedgerResult", "after_ingest", "entity", "entity_in_memory", "listing", "refresh", "verify"]
