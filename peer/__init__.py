"""napshare peer."""
