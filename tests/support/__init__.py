"""What the tests (and the bench) share: helpers, fake peers, relays; never a test itself.

Each helper has one home here; conftest.py files only wrap them into fixtures. Names say where
a server runs: `start_*` and `InProcess*` in the test's own process, `spawn_*` and `*Process` a
child process (`python -m napshare.tracker`, `python -m napshare.peer`), which `run_peer` runs
to its end.
"""
