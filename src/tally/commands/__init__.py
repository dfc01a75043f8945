"""Bodies of CLI commands that live outside cli.py."""
