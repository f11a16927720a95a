"""``bench faults``: its arithmetic on hand-made cases, its proxy, and one small row for real."""

from __future__ import annotations

import socket
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from civicguard.benchmarks.faults import SERVE_KILL, FaultSettings, Row, embedded_row, table
from civicguard.benchmarks.processes import Tally, TcpProxy, acknowledged, tally


def test_lost_and_duplicated_on_a_hand_made_case() -> None:
    acked = [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    rows = [("a", 1), ("a", 1), ("a", 3), ("b", 1), ("b", 2), ("b", 2), ("b", 2)]
    # a/2 was acknowledged and is missing; a/1 is stored twice and b/2 three times (b/2 was
    # never acknowledged: stored is fine, but not three times).
    assert tally(acked, rows) == Tally(acknowledged=4, stored=7, lost=1, duplicated=3)


def test_nothing_stored_loses_everything_acknowledged_and_duplicates_nothing() -> None:
    assert tally([("a", 1), ("a", 2)], []) == Tally(2, 0, 2, 0)
    # A reading acknowledged twice (a retried body) is one reading.
    assert tally([("a", 1), ("a", 1)], [("a", 1)]) == Tally(1, 1, 0, 0)


def test_a_2xx_answer_acknowledges_what_it_does_not_refuse() -> None:
    answer = httpx.Response(
        202,
        json={"accepted": 2, "duplicates": 0, "rejected": [{"reason": "x", "seq": 11}]},
    )
    assert acknowledged("d", range(10, 13), answer) == [("d", 10), ("d", 12)]


def _echo_server() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(99):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, int(listener.getsockname()[1])


def test_the_proxy_relays_then_cuts_and_refuses_then_relays_again() -> None:
    listener, port = _echo_server()
    proxy = TcpProxy(port)
    proxy.open()
    try:
        open_conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        open_conn.sendall(b"ping")
        assert open_conn.recv(99) == b"ping"
        proxy.close()
        assert open_conn.recv(99) == b""  # the open connection was cut
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        proxy.open()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            again.sendall(b"back")
            assert again.recv(99) == b"back"
    finally:
        proxy.close()
        listener.close()


def test_one_small_embedded_row_kill_9_of_serve(tmp_path: Path) -> None:
    """The harness for real, small: serve killed mid-stream, restarted, every figure counted."""
    settings = FaultSettings(
        readings=400, batch=50, devices=1, send_limit_s=120, settle_s=30, quiet_s=3
    )
    row = embedded_row(SERVE_KILL, tmp_path, settings)
    assert row.tally is not None, row.note
    t = row.tally
    # Half the readings were acknowledged before the kill; the devices then sent the rest,
    # and the probe device one more.
    assert settings.readings // 2 <= t.acknowledged <= settings.readings + 1
    # What the table says is stored is what the database holds, counted here on our own.
    with sqlite3.connect(tmp_path / "data" / "civicguard.db") as db:
        rows = db.execute("SELECT count(*), count(DISTINCT device_id || '/' || seq) FROM readings")
        count, distinct = rows.fetchone()
    assert t.stored == count
    assert t.duplicated == count - distinct
    assert 0 <= t.lost <= t.acknowledged
    assert distinct >= t.acknowledged - t.lost
    # The restarted serve took readings again and stored them.
    assert row.recovery_s is not None and row.recovery_s > 0


def test_the_table_shows_every_row_and_why_one_did_not_run() -> None:
    from rich.console import Console

    rows = [
        Row("serve kill -9", Tally(10, 9, 1, 0), 2.5),
        Row("SQLite disk read-only", None, None, "skipped: needs root"),
    ]
    console = Console(width=200, record=True)
    console.print(table(rows))
    text = console.export_text()
    assert "serve kill -9" in text and "2.5" in text
    assert "skipped: needs root" in text
