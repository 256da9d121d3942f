from archive.derivatives import record_failure, store_derivative
from catalog.models import Derivative
from tests.concurrency import at_once, raised


def test_the_same_derivative_stored_by_two_passes_at_once(env, tmp_path) -> None:
    """A daemon and a manual scan finishing the same recording: one row, never a unique violation."""
    rec = env.recording(1)
    record_failure(env.as_("station:ST01"), rec, kind="proxy", error="ffmpeg was killed")
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"p" * 2000)
    results = at_once(
        6,
        lambda _i: (
            store_derivative(
                env.as_("station:ST01"),
                rec,
                kind="proxy",
                path=proxy,
                ext="mp4",
                content_type="video/mp4",
                method="remux",
            ).id
        ),
    )
    assert raised(results) == [] and len(set(results)) == 1
    with env.sessions() as s:
        rows = s.query(Derivative).filter_by(recording_id=rec.id).all()
    assert [(r.kind, r.status, r.error) for r in rows] == [("proxy", "ok", None)]
