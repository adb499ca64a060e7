"""Placeholder: the server helper fills this in (fixtures for running SOCKS servers)."""
