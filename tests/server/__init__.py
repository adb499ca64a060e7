"""Tests of the reference server socksify-server (socksify/server/)."""
