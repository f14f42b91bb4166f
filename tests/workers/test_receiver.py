"""Which failures count against a message (and send it to the dead letters) and which are the servers'."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError

from workers.receiver import is_infrastructure_error


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _DriverError(sqlstate))


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("53300", True),  # too many clients already
        ("57P01", True),  # terminating connection due to administrator command
        ("08006", True),  # connection failure
        ("40P01", True),  # deadlock detected
        ("23505", False),  # unique violation: the message's own problem
        ("22P02", False),  # invalid text representation
    ],
)
def test_database_errors_are_told_apart_by_sqlstate(sqlstate: str, expected: bool) -> None:
    assert is_infrastructure_error(_dbapi_error(sqlstate)) is expected


def test_redis_and_network_errors_are_infrastructure() -> None:
    assert is_infrastructure_error(RedisConnectionError("gone"))
    assert is_infrastructure_error(ConnectionRefusedError())
    assert not is_infrastructure_error(RuntimeError("bot crashed"))
