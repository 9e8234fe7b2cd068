"""Downloading: the download engine, one stream from one peer, part files, hashing."""
