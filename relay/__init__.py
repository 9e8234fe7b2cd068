"""napshare relay: pairs two peers that cannot reach each other and splices their TLS bytes."""
