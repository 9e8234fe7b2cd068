"""Fixtures for the store tests: the test session's Redis server."""

import pytest

from tests.support.redis import RedisServer, shared_server


@pytest.fixture
def redis_server() -> RedisServer:
    """The session's redis-server (on a unix socket, without persistence)."""
    return shared_server()
