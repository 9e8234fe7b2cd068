"""Replicas SIGKILLed during a storm of Joins, Updates, Heartbeats, Leaves and Searches: every
acknowledged change is in the store afterwards and the store is consistent (tests/support/chaos).
"""

from pathlib import Path

from tests.support.chaos import Storm
from tests.support.redis import RedisServer, store_url


def test_killing_replicas_during_a_storm_loses_nothing_acknowledged(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    storm = Storm(store_url(redis_server), tmp_path, replicas=3)
    try:
        report = storm.run(8.0, workers=4, peers=12, kill_every=1.0)
    finally:
        storm.stop()

    assert report.problems == []
    assert report.kills >= 2
    assert report.calls[("Join", "OK")] > 50
    assert report.calls[("Search", "OK")] > 50
    assert report.registered > 0
