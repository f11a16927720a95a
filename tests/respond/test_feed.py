"""The live feed hands every event to every listener, even when one of them fails."""

from __future__ import annotations

from civicguard.respond.feed import LiveFeed


def test_a_failing_listener_does_not_stop_the_others() -> None:
    feed = LiveFeed()
    seen: list[dict] = []

    def broken(event: dict) -> None:
        raise RuntimeError("tab closed")

    feed.subscribe(broken)
    stop = feed.subscribe(seen.append)
    feed.publish({"type": "alert", "id": "a"})
    stop()
    feed.publish({"type": "alert", "id": "b"})
    assert seen == [{"type": "alert", "id": "a"}]
