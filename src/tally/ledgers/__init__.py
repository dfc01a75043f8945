"""ledgers layer."""
