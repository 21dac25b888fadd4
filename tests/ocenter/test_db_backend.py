"""Persistent PostgreSQL connections: checked before use after a pause, not before every request under load."""

import pytest
from django.db import connection, connections


@pytest.fixture
def own_connection():
    if connection.vendor != "postgresql":
        pytest.skip("oCenter's PostgreSQL backend")
    conn = connections.create_connection("default")
    conn.settings_dict["CONN_HEALTH_CHECKS"] = True
    yield conn
    conn.close()


def _check(conn):
    conn.health_check_done = False  # as at the start of a request
    conn.close_if_health_check_failed()


@pytest.mark.django_db
def test_a_connection_used_a_moment_ago_is_not_checked_and_one_idle_is(own_connection, monkeypatch):
    conn = own_connection
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    checks = []
    monkeypatch.setattr(conn, "is_usable", lambda: checks.append(1) or True)
    _check(conn)
    assert checks == []
    conn.used_at -= 5
    _check(conn)
    assert checks == [1]


@pytest.mark.django_db
def test_an_idle_connection_the_server_dropped_is_replaced_before_use(own_connection):
    conn = own_connection
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    conn.used_at -= 5
    _check(conn)
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
