"""Reaching peers behind NATs: the serving side's Listen stream, the downloader's paths."""
