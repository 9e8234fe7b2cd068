"""`make bench`: napshare against raw TCP, curl and a bare gRPC server; see tests/bench/run.py."""
