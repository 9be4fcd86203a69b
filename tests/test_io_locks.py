"""The locks of polydistill.io (filelock): an output held by one writer is refused to a second
(``try_lock``), and a shared artefact another run is building is waited for (``wait_lock``)."""

from __future__ import annotations

import threading
import time

from polydistill.io import try_lock, wait_lock


def test_try_lock_refuses_a_held_target_and_frees_it_on_exit(tmp_path):
    target = tmp_path / "out"
    with try_lock(target) as first:
        assert first
        with try_lock(target) as second:  # another holder (its own lock file handle) is refused
            assert not second
        with try_lock(tmp_path / "other") as other:  # another target is independent
            assert other
    with try_lock(target) as again:
        assert again


def test_wait_lock_waits_for_the_holder_then_takes_the_lock(tmp_path):
    target = tmp_path / "lm-students" / "shared.build"
    events: list[str] = []

    def waiter():
        with wait_lock(target):
            events.append("waiter holds")

    with try_lock(target) as held:
        assert held and target.parent.is_dir()
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert events == []  # still waiting while the first holder builds
        events.append("holder done")
    thread.join(timeout=10)
    assert events == ["holder done", "waiter holds"]
