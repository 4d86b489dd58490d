"""Routing capture, sharded extraction and the routing store."""
