"""Helpers of the hardening scripts (scripts/leak-audit, scripts/load_connections)."""
