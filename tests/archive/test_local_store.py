"""What only the local WORM directory does: files, modes, crashes."""

import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive.errors import ObjectExists, ObjectLocked, ObjectMissing
from archive.local_store import LocalStore


def test_objects_are_written_once_and_read_only(local_store: LocalStore) -> None:
    r = local_store.put("originals/2020/11/05/A-1.mp4", io.BytesIO(b"one"))
    path = local_store.root / "objects" / r.key
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    with pytest.raises(ObjectExists):
        local_store.put(r.key, io.BytesIO(b"two"))
    assert path.read_bytes() == b"one"
    assert r.version == hashlib.sha256(b"one").hexdigest()[:16]
    assert list((local_store.root / "tmp").iterdir()) == []


def test_an_object_without_its_record_is_treated_as_locked(local_store: LocalStore) -> None:
    r = local_store.put("originals/2020/11/05/A-2.mp4", io.BytesIO(b"x"))
    (local_store.root / "meta" / f"{r.key}.json").unlink()  # as if killed between the writes
    assert local_store.stat(r.key).size == 1
    with pytest.raises(ObjectLocked):
        local_store.delete(r.key, None)


def test_wrong_version_is_missing(local_store: LocalStore) -> None:
    r = local_store.put("originals/2020/11/05/A-3.mp4", io.BytesIO(b"x"))
    with pytest.raises(ObjectMissing):
        local_store.stat(r.key, "0" * 16)


def test_staged_bytes_are_stored_under_a_key_or_thrown_away(local_store: LocalStore) -> None:
    data = os.urandom(3 << 20)  # several chunks: hashed and read back in threads
    staged = local_store.stage(io.BytesIO(data))
    assert staged.digests.sha256 == hashlib.sha256(data).hexdigest() and staged.digests.size == len(data)
    assert stat.S_IMODE(staged.path.stat().st_mode) == 0o444
    with pytest.raises(ObjectMissing):
        local_store.stat("originals/2020/11/05/A-4.mp4")  # nothing stored yet
    r = local_store.commit_staged(staged, "originals/2020/11/05/A-4.mp4", retain_until=None)
    assert b"".join(local_store.read(r.key)) == data and r.digests.sha256 == staged.digests.sha256
    assert list((local_store.root / "tmp").iterdir()) == []
    # Written once: the same or other staged bytes never replace it.
    other = local_store.stage(io.BytesIO(b"other"))
    with pytest.raises(ObjectExists):
        local_store.commit_staged(other, r.key)
    local_store.discard(other)
    assert list((local_store.root / "tmp").iterdir()) == []
    assert b"".join(local_store.read(r.key)) == data


def test_a_failed_stage_leaves_nothing_and_stale_staged_files_are_cleaned(local_store: LocalStore) -> None:
    def refuse(_digests) -> None:
        raise ObjectLocked("refused by the check")

    with pytest.raises(ObjectLocked):
        local_store.stage(io.BytesIO(b"x" * 100), check=refuse)
    tmp = local_store.root / "tmp"
    assert list(tmp.iterdir()) == []
    # A process killed while holding staged bytes leaves them; a day later they are removed,
    # a fresh one (another process working now) is left alone.
    stale, fresh = local_store.stage(io.BytesIO(b"stale")), local_store.stage(io.BytesIO(b"fresh"))
    os.utime(stale.path, (time.time() - 2 * 86400,) * 2)
    assert local_store.clean_staged() == 1
    assert not stale.path.exists() and fresh.path.exists()


WRITER = """
import sys, time
from pathlib import Path
from archive.local_store import LocalStore

class Slow:
    def __init__(self): self.sent = 0
    def readinto(self, buf):
        if self.sent >= 200 * 1024 * 1024: return 0
        n = min(len(buf), 1 << 20); buf[:n] = b"v" * n; self.sent += n
        if self.sent == 4 << 20: print("writing", flush=True)
        time.sleep(0.05)
        return n

store = LocalStore(Path(sys.argv[1]), lock_mode="COMPLIANCE"); store.ensure_ready()
store.put("originals/2020/11/05/A-9.mp4", Slow())
print("finished", flush=True)
"""


def test_a_writer_killed_mid_put_leaves_no_object(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    store = LocalStore(root, lock_mode="COMPLIANCE")
    with pytest.raises(ObjectMissing):
        store.stat("originals/2020/11/05/A-9.mp4")
    assert list(store.list()) == []
    # The key is still free: a retry stores it.
    assert store.put("originals/2020/11/05/A-9.mp4", io.BytesIO(b"retry")).digests.size == 5


def test_disk_full_fails_cleanly(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        store = LocalStore(small / "store", lock_mode="COMPLIANCE")
        store.ensure_ready()
        with pytest.raises(OSError) as exc:
            store.put("originals/2020/11/05/A-1.mp4", io.BytesIO(b"x" * (4 << 20)))
        assert exc.value.errno == 28  # ENOSPC
        with pytest.raises(ObjectMissing):
            store.stat("originals/2020/11/05/A-1.mp4")
        assert list((small / "store" / "tmp").iterdir()) == []
        # Space is back: the next, smaller object is stored normally.
        assert store.put("originals/2020/11/05/A-2.mp4", io.BytesIO(b"y" * 1000)).digests.size == 1000
    finally:
        subprocess.run(["umount", str(small)], check=False)
        time.sleep(0.1)
