"""`tally serve`: one process owns the project (HTTP API, scheduler) and runs the CLI's commands on it."""
