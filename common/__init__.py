"""napshare common."""
