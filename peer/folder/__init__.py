"""The shared folder: which files are shared, their cached digests, safe opens."""
