"""Pruning the proxies of originals that browsers play as they are, on the local store and on
RGW (``env``'s store), with the short locks ``env`` sets: refused while locked, done later."""

import time

import pytest
from sqlalchemy import select

from archive.derivatives import store_derivative
from archive.errors import ObjectMissing
from archive.holds import set_hold
from archive.redundant import prune_redundant, redundant_proxies
from catalog import custody
from catalog.models import Derivative

H264 = {
    "kind": "video",
    "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
    "video_codec": "h264",
    "video_profile": "High",
    "pix_fmt": "yuv420p",
    "audio_codec": "aac",
    "width": 1920,
    "height": 1080,
}
HEVC = H264 | {"video_codec": "hevc", "video_profile": "Main"}


def _with_proxy(env, n: int, media: dict, **facts):
    rec = env.recording(n, media_info=media, **facts)
    proxy = env.tmp / f"proxy-{n}.mp4"
    proxy.write_bytes(b"\x00\x00\x00\x18ftypmp42 proxy %d " % n + bytes(range(256)) * 20)
    row = store_derivative(
        env.as_("station:ST01"),
        rec,
        kind="proxy",
        path=proxy,
        ext="mp4",
        content_type="video/mp4",
        method="remux",
    )
    return rec, row


def _pruned_events(env, archive_no: str) -> list:
    with env.sessions() as s:
        return [e for e in custody.events(s, subject=archive_no) if e.action == "derivative_pruned"]


# The locks are what matters here, so both stores but only the default catalog.
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE
def test_redundant_proxies_go_once_their_lock_has_run_out_each_with_an_event(env) -> None:
    playable, proxy = _with_proxy(env, 1, H264)
    hevc, hevc_proxy = _with_proxy(env, 2, HEVC)
    damaged, damaged_proxy = _with_proxy(env, 3, H264, damaged=True, damage_reason="cut short")
    assert [r.key for r in redundant_proxies(env.as_("curator"))] == [proxy.storage_key]

    listed = prune_redundant(env.as_("curator"), confirm=False)
    assert [r.key for r in listed.found] == [proxy.storage_key] and listed.pruned == []
    env.store.stat(proxy.storage_key, proxy.storage_version)  # still there

    locked = prune_redundant(env.as_("curator"), confirm=True)
    assert locked.pruned == [] and len(locked.refused) == 1
    assert "run again once the lock has run out" in locked.refused[0][1]
    env.store.stat(proxy.storage_key, proxy.storage_version)
    assert _pruned_events(env, playable.archive_no) == []

    time.sleep(4)  # env's locks last 3 s, on the store's own clock
    done = prune_redundant(env.as_("curator"), confirm=True)
    assert [r.key for r in done.pruned] == [proxy.storage_key] and done.refused == []
    with pytest.raises(ObjectMissing):
        env.store.stat(proxy.storage_key, proxy.storage_version)
    with env.sessions() as s:
        kept = {d.storage_key for d in s.execute(select(Derivative)).scalars()}
        assert kept == {hevc_proxy.storage_key, damaged_proxy.storage_key}
        assert custody.verify(s).ok
    (event,) = _pruned_events(env, playable.archive_no)
    assert event.actor == "curator"
    assert event.details == {
        "kind": "proxy",
        "key": proxy.storage_key,
        "sha256": proxy.sha256,
        "size": proxy.size,
        "reason": "the original plays in browsers as it is",
    }
    env.store.stat(hevc_proxy.storage_key, hevc_proxy.storage_version)  # HEVC keeps its proxy
    assert prune_redundant(env.as_("curator"), confirm=True).found == []  # nothing left to do


@SQLITE
def test_a_run_killed_between_store_and_catalog_is_completed_and_held_ones_are_left(env) -> None:
    gone, gone_proxy = _with_proxy(env, 1, H264)
    held, held_proxy = _with_proxy(env, 2, H264)
    set_hold(env.as_("legal"), held.archive_no, reason="court order")
    time.sleep(4)
    # The object deleted and the process dead before its catalog commit.
    env.store.delete(gone_proxy.storage_key, gone_proxy.storage_version)
    result = prune_redundant(env.as_("curator"), confirm=True)
    assert [r.key for r in result.pruned] == [gone_proxy.storage_key]
    assert len(_pruned_events(env, gone.archive_no)) == 1
    (refused,) = result.refused
    assert refused[0].key == held_proxy.storage_key and "legal hold" in refused[1]
    env.store.stat(held_proxy.storage_key, held_proxy.storage_version)
