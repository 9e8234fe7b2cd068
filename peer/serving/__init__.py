"""Serving: the PeerService servicer, one upload's logic, upload slots, status codes."""
