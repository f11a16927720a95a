"""The file key store shared by several processes: no lost key, no destroyed key coming back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from civicguard.privacy.keys import FileKeyStore


def test_a_key_destroyed_by_another_process_is_not_written_back(tmp_path: Path) -> None:
    serve = FileKeyStore.in_dir(tmp_path)  # e.g. `civicguard serve`
    old = serve.get_or_create("pseudonym/traffic.anpr/0-86400")
    cron = FileKeyStore.in_dir(tmp_path)  # e.g. `civicguard retention run` from cron
    assert cron.get("pseudonym/traffic.anpr/0-86400") == old
    assert cron.destroy("pseudonym/traffic.anpr/0-86400")
    # serve still runs, and creates the next period's key: the file is rewritten whole.
    serve.get_or_create("pseudonym/traffic.anpr/86400-172800")
    assert serve.get("pseudonym/traffic.anpr/0-86400") is None
    fresh = FileKeyStore.in_dir(tmp_path)
    assert fresh.names() == ["pseudonym/traffic.anpr/86400-172800"]


def test_keys_created_by_another_process_are_seen_not_remade(tmp_path: Path) -> None:
    one, two = FileKeyStore.in_dir(tmp_path), FileKeyStore.in_dir(tmp_path)
    made = one.get_or_create("subject/abc")
    assert two.get_or_create("subject/abc") == made
    assert two.names() == one.names() == ["subject/abc"]


_WORKER = """
import sys
from pathlib import Path
from civicguard.privacy.keys import FileKeyStore
store = FileKeyStore.in_dir(Path(sys.argv[1]))
for i in range(40):
    store.get_or_create(f"subject/{sys.argv[2]}-{i}")
"""


def test_processes_creating_keys_at_once_lose_none(tmp_path: Path) -> None:
    FileKeyStore.in_dir(tmp_path)  # the master key exists before the workers start
    env = {k: v for k, v in os.environ.items() if k != "CIVICGUARD_MASTER_KEY"}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), f"w{n}"], env=env)
        for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    names = FileKeyStore.in_dir(tmp_path).names()
    assert len(names) == 160
    assert {f"subject/w{n}-{i}" for n in range(4) for i in range(40)} == set(names)
