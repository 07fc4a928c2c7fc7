"""Real servers for the infrastructure tests: PostgreSQL from Debian's package on 127.0.0.1."""
import pytest

from study.ops.servers import LocalPostgres


@pytest.fixture
def postgres():
    server = LocalPostgres().start()
    yield server
    server.remove()
