import pytest

from catalog.playback import play_type, plays_as_is

H264_MP4 = {
    "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
    "video_codec": "h264",
    "video_profile": "High",
    "pix_fmt": "yuv420p",
    "audio_codec": "aac",
    "width": 1920,
    "height": 1080,
}


@pytest.mark.parametrize(
    ("kind", "changes", "plays"),
    [
        ("video", {}, True),
        ("video", {"audio_codec": None}, True),
        ("video", {"width": 1080, "height": 1920}, True),
        ("video", {"video_codec": "hevc", "video_profile": "Main"}, False),
        ("video", {"video_codec": "mpeg4", "video_profile": "Simple Profile"}, False),  # MPEG-4 Part 2
        ("video", {"video_codec": "mjpeg", "video_profile": "Baseline"}, False),
        ("video", {"audio_codec": "pcm_s16le"}, False),  # PCM in MOV
        ("video", {"format_name": "avi"}, False),
        ("video", {"format_name": "matroska,webm"}, False),
        ("video", {"width": 3840, "height": 2160}, False),
        ("video", {"pix_fmt": "yuv420p10le", "video_profile": "High 10"}, False),
        ("video", {"width": None}, False),
        ("audio", {"video_codec": None, "width": None, "height": None}, True),
        ("audio", {"video_codec": None, "audio_codec": "mp3", "format_name": "mp3"}, True),
        ("audio", {"video_codec": None, "audio_codec": "pcm_s16le", "format_name": "wav"}, False),
        ("photo", {"video_codec": "mjpeg", "format_name": "image2"}, False),
    ],
)
def test_what_browsers_play_as_it_is(kind: str, changes: dict, plays: bool) -> None:
    assert plays_as_is(kind, H264_MP4 | changes) is plays


def test_damaged_or_unknown_originals_always_get_a_proxy() -> None:
    assert not plays_as_is("video", H264_MP4, damaged=True)
    assert not plays_as_is("video", {})


def test_mov_is_served_as_mp4() -> None:
    assert play_type("video", H264_MP4 | {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}) == "video/mp4"
    assert play_type("audio", {"format_name": "mp3"}) == "audio/mpeg"
