"""rollups layer."""
