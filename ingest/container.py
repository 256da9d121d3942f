"""Is a file a complete recording? Judged from its container's own structure.

A docking station cannot be trusted to say when a copy is finished, and a recorder whose
battery died leaves a file that looks normal by name and size. Each container declares how
long its parts are; a part that declares more bytes than the file holds, or a missing index,
means the file is cut short. Only the few bytes that carry those declarations are read
(``pread`` at known offsets), so a 4 GiB recording is judged in milliseconds and memory
stays flat.

The verdict (:class:`Integrity`) comes from the content, never from the extension: a text
file named ``.mp4`` is ``not_media``, a ``.MOV`` that holds MP4 is fine. What the caller does
with it (bad input is kept, never dropped; docs/ARCHITECTURE.md): ``damaged`` is still
evidence and is archived with a flag;
``empty`` and ``not_media`` (symbolic links and other non-regular files included, never
followed or opened) go to the station's quarantine; an ``OSError`` (unreadable now,
vanished) propagates so the caller leaves the file and retries.

What is checked, per container:

- MP4 / MOV / 3GP / HEIF (ISO base media): the top-level boxes are walked (32-bit size,
  size 1 means a 64-bit size follows, size 0 means "to the end of the file"); a box that
  runs past the end is ``damaged``; the first box must be a known top-level type or the file
  is ``not_media``; no ``moov`` (``meta`` for HEIF photos) or no ``mdat`` is ``damaged``
  (``moov`` is written last by most recorders, so a recording interrupted by power loss
  has none). Zero bytes after the last box (pre-allocated space) are ignored. ``kind``
  comes from the track handlers inside ``moov`` (``vide``/``soun``), else from the brand.
- WAV (RIFF/RF64 WAVE): the chunks are walked; ``fmt`` and ``data`` must be there, no
  chunk may run past the end, and the RIFF size must match the file (one pad byte allowed).
- AVI (RIFF AVI, with AVIX extensions): the same chunk walk; ``hdrl`` and ``movi`` lists
  must be there.
- Matroska / WebM: the Segment's declared size must fit the file (a live-written file with
  an unknown size is accepted, with a reason saying it was not checked).
- MPEG-TS / M2TS: the size must be a whole number of 188- or 192-byte packets.
- JPEG: starts ``FF D8 FF`` and ends with ``FF D9`` (trailing zero bytes allowed).
- PNG: the signature, then chunks walked to ``IEND``.
- MP3, AAC (ADTS), AMR: recognised by their magic only; these streams have no index to
  compare with, so their completeness is **not** checked (``ok`` with a reason saying so).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Integrity", "check_fd", "check_file"]

Status = Literal["ok", "damaged", "not_media", "empty"]
Kind = Literal["video", "audio", "photo"]

# Top-level box types a file may start with (ISO/IEC 14496-12 and QuickTime).
_FIRST_BOXES = frozenset(
    {
        b"ftyp",
        b"moov",
        b"mdat",
        b"free",
        b"skip",
        b"wide",
        b"pnot",
        b"uuid",
        b"pdin",
        b"junk",
        b"styp",
        b"sidx",
        b"moof",
        b"PICT",
    }
)
# QuickTime files written without ftyp start with one of these.
_QUICKTIME_FIRST = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"junk", b"PICT"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"F4A ", b"F4B "})

_MAX_ENTRIES = 1_000_000  # boxes or chunks walked before giving up (a pathological file)
_MAX_ZERO_TAIL = 16 * 1024 * 1024  # JPEG zero padding scanned before calling it damaged
_NOT_CHECKED = "completeness of {} streams is not checked (they carry no index to compare with)"


@dataclass(frozen=True)
class Integrity:
    """The verdict on one file.

    ``kind`` and ``container`` are what the content is (whatever the extension says), known
    also for a damaged file. ``reason`` says why the status is what it is, in words for
    people; for ``ok`` it is None unless there is a caveat (a part that was not checked).
    """

    status: Status
    kind: Kind | None = None
    container: str | None = None
    reason: str | None = None


def check_file(path: Path) -> Integrity:
    """Judge the file at ``path`` from its content (module docstring).

    Never raises for what the content is; ``OSError`` (missing, unreadable) propagates so
    the caller can leave the file and retry. Symbolic links and non-regular files are
    ``not_media`` without being opened.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return Integrity("not_media", reason="a symbolic link (never followed)")
    if not stat.S_ISREG(info.st_mode):
        return Integrity("not_media", reason="not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        return check_fd(fd)
    finally:
        os.close(fd)


def check_fd(fd: int) -> Integrity:
    """Judge the file open at ``fd`` (read with ``pread``: its offset is left alone), as
    :func:`check_file` does; for a caller that opened the file once and reads only that."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # replaced between lstat and open
        return Integrity("not_media", reason="not a regular file")
    return _judge(_File(fd, info.st_size))


@dataclass(frozen=True)
class _File:
    fd: int
    size: int

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer at the end of the file)."""
        if offset >= self.size or length <= 0:
            return b""
        return os.pread(self.fd, min(length, self.size - offset), offset)

    def zeros_from(self, offset: int, probe: int = 4096) -> bool:
        """True when the bytes from ``offset`` look like unused space (zeros at both ends)."""
        head = self.read(offset, probe)
        tail = self.read(max(offset, self.size - probe), probe)
        return not head.strip(b"\0") and not tail.strip(b"\0")


def _judge(f: _File) -> Integrity:
    if f.size == 0:
        return Integrity("empty", reason="zero bytes")
    head = f.read(0, 1024)
    if len(head) >= 8 and head[4:8] in _FIRST_BOXES and _plausible_box_size(head):
        return _check_bmff(f, head)
    if head[:4] in (b"RIFF", b"RF64"):
        form = head[8:12]
        if form == b"WAVE":
            return _check_wav(f, head)
        if form == b"AVI " and head[:4] == b"RIFF":
            return _check_avi(f)
        if len(head) < 12:
            return Integrity("damaged", reason="RIFF header cut short")
    if head[:3] == b"\xff\xd8\xff":
        return _check_jpeg(f)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return _check_png(f)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _check_ebml(f, head)
    ts = _ts_packet_size(head, f.size)
    if ts:
        return _check_ts(f, ts)
    if head.startswith((b"#!AMR\n", b"#!AMR-WB\n", b"#!AMR_MC1.0\n", b"#!AMR-WB_MC1.0\n")):
        return Integrity("ok", "audio", "amr", _NOT_CHECKED.format("AMR"))
    if head[:3] == b"ID3":
        return _check_id3(f, head)
    frame = _mpeg_audio(head[:4])
    if frame:
        return Integrity("ok", "audio", frame, _NOT_CHECKED.format(frame.upper()))
    # Never quote the content: a file that is not media may be anything, a key included.
    return Integrity("not_media", reason="not a known media format (its first bytes match none)")


def _be32(b: bytes) -> int:
    return int.from_bytes(b[:4], "big")


def _le32(b: bytes) -> int:
    return int.from_bytes(b[:4], "little")


def _name(tag: bytes) -> str:
    """A four-character code for messages; unprintable bytes are not quoted (they may be
    anything the file holds)."""
    if all(0x20 <= c < 0x7F for c in tag):
        return tag.decode("ascii").strip() or repr(tag.decode("ascii"))
    return "an unprintable type"


def _past_end(what: str, declared: int, f: _File, offset: int) -> Integrity:
    return Integrity(
        "damaged",
        reason=(
            f"{what} declares {declared} bytes, file has {max(f.size - offset, 0)} after offset {offset}"
        ),
    )


# --- ISO base media (MP4, MOV, 3GP, HEIF) --------------------------------------------------


def _plausible_box_size(head: bytes) -> bool:
    box_size = _be32(head)
    return box_size in (0, 1) or box_size >= 8


def _check_bmff(f: _File, head: bytes) -> Integrity:
    brand = head[8:12] if head[4:8] == b"ftyp" and len(head) >= 12 else None
    if brand is None:
        container = "mov" if head[4:8] in _QUICKTIME_FIRST else "mp4"
    elif brand == b"qt  ":
        container = "mov"
    elif brand[:3] in (b"3gp", b"3g2", b"3ge", b"3gg", b"3gs"):
        container = "3gp"
    elif brand in _HEIF_BRANDS:
        container = "heif"
    else:
        container = "mp4"
    is_photo = container == "heif"
    fallback: Kind = "photo" if is_photo else ("audio" if brand in _AUDIO_BRANDS else "video")

    offset, count = 0, 0
    found: dict[bytes, tuple[int, int, int]] = {}  # first box of each type: offset, size, header
    caveat: str | None = None
    while offset < f.size:
        count += 1
        if count > _MAX_ENTRIES:
            return Integrity(
                "damaged",
                fallback,
                container,
                f"more than {_MAX_ENTRIES} top-level boxes: not walked to the end",
            )
        header = f.read(offset, 16)
        if not header.strip(b"\0") and f.zeros_from(offset):
            caveat = f"zero bytes from offset {offset} to the end (unused space, ignored)"
            break
        if len(header) < 8:
            return Integrity(
                "damaged",
                fallback,
                container,
                f"box header at offset {offset} cut short ({len(header)} of 8 bytes)",
            )
        box_size, box_type, header_len = _be32(header), header[4:8], 8
        if box_size == 1:
            if len(header) < 16:
                return Integrity(
                    "damaged",
                    fallback,
                    container,
                    f"64-bit size of {_name(box_type)} at offset {offset} cut short",
                )
            box_size, header_len = int.from_bytes(header[8:16], "big"), 16
        elif box_size == 0:
            box_size = f.size - offset
        if not all(0x20 <= c < 0x7F for c in box_type) or box_size < header_len:
            return Integrity(
                "damaged",
                fallback,
                container,
                f"unreadable box ({_name(box_type)}, size {box_size}) at offset {offset}",
            )
        if offset + box_size > f.size:
            r = _past_end(_name(box_type), box_size, f, offset)
            return Integrity("damaged", fallback, container, r.reason)
        found.setdefault(box_type, (offset, box_size, header_len))
        offset += box_size

    if is_photo:
        if b"meta" not in found:
            return Integrity("damaged", "photo", container, "meta box not found")
        return Integrity("ok", "photo", container, caveat)
    if b"moov" not in found:
        return Integrity(
            "damaged", fallback, container, "moov atom not found (the recording was not finished)"
        )
    kind = _kind_from_moov(f, *found[b"moov"]) or fallback
    if b"mdat" not in found:
        return Integrity("damaged", kind, container, "mdat box not found (no media data)")
    return Integrity("ok", kind, container, caveat)


def _children(f: _File, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """Boxes inside ``[start, end)``: (type, offset, size, header length); stops at nonsense."""
    out: list[tuple[bytes, int, int, int]] = []
    offset = start
    while offset + 8 <= end and len(out) < 4096:
        header = f.read(offset, 16)
        size, header_len = _be32(header), 8
        if size == 1 and len(header) == 16:
            size, header_len = int.from_bytes(header[8:16], "big"), 16
        elif size == 0:
            size = end - offset
        if size < header_len or offset + size > end:
            break
        out.append((header[4:8], offset, size, header_len))
        offset += size
    return out


def _kind_from_moov(f: _File, offset: int, size: int, header_len: int) -> Kind | None:
    """Video when any track's handler is ``vide``, audio when one is ``soun``."""
    handlers: set[bytes] = set()
    for t_type, t_off, t_size, t_hdr in _children(f, offset + header_len, offset + size):
        if t_type != b"trak":
            continue
        for m_type, m_off, m_size, m_hdr in _children(f, t_off + t_hdr, t_off + t_size):
            if m_type != b"mdia":
                continue
            for h_type, h_off, _h_size, h_hdr in _children(f, m_off + m_hdr, m_off + m_size):
                if h_type == b"hdlr":
                    handlers.add(f.read(h_off + h_hdr + 8, 4))
    if b"vide" in handlers:
        return "video"
    if b"soun" in handlers:
        return "audio"
    return None


# --- RIFF (WAV, AVI) ------------------------------------------------------------------------


def _walk_riff(
    f: _File, start: int, end: int, *, data64: int | None = None
) -> tuple[list[tuple[bytes, int, int]], Integrity | None]:
    """Chunks in ``[start, end)`` as (id, data offset, data size), or the damage found."""
    chunks: list[tuple[bytes, int, int]] = []
    offset = start
    while offset < end:
        if len(chunks) >= _MAX_ENTRIES:
            return chunks, Integrity("damaged", reason=f"more than {_MAX_ENTRIES} RIFF chunks")
        header = f.read(offset, 12)
        if len(header) < 8:
            if offset + 1 == end == f.size:  # a final pad byte
                break
            return chunks, Integrity(
                "damaged", reason=(f"chunk header at offset {offset} cut short ({len(header)} of 8 bytes)")
            )
        chunk_id, size = header[:4], _le32(header[4:8])
        if chunk_id == b"data" and size == 0xFFFFFFFF and data64 is not None:
            size = data64
        if offset + 8 + size > f.size:
            return chunks, _past_end(_name(chunk_id), size, f, offset + 8)
        chunks.append((chunk_id, offset + 8, size))
        if chunk_id == b"LIST" and size >= 4:
            chunks.append((b"LIST:" + f.read(offset + 8, 4), offset + 12, size - 4))
        offset += 8 + size + (size & 1)
    return chunks, None


def _check_wav(f: _File, head: bytes) -> Integrity:
    riff_size = _le32(head[4:8])
    data64: int | None = None
    if head[:4] == b"RF64":
        ds64 = f.read(12, 36)
        if ds64[:4] != b"ds64" or len(ds64) < 28:
            return Integrity("damaged", "audio", "wav", "RF64 file without its ds64 chunk")
        riff_size, data64 = int.from_bytes(ds64[8:16], "little"), int.from_bytes(ds64[16:24], "little")
    chunks, damage = _walk_riff(f, 12, min(riff_size + 8, f.size), data64=data64)
    if damage is not None:
        return Integrity("damaged", "audio", "wav", damage.reason)
    ids = {c[0] for c in chunks}
    if riff_size + 8 > f.size:
        return Integrity(
            "damaged",
            "audio",
            "wav",
            f"RIFF declares {riff_size} bytes, file has {f.size - 8} after offset 8",
        )
    if riff_size + 8 < f.size - 1:
        return Integrity(
            "damaged",
            "audio",
            "wav",
            f"RIFF declares {riff_size} bytes but the file has {f.size - 8} after "
            "offset 8 (the header was not updated)",
        )
    if b"fmt " not in ids:
        return Integrity("damaged", "audio", "wav", "fmt chunk not found")
    if b"data" not in ids:
        return Integrity("damaged", "audio", "wav", "data chunk not found")
    return Integrity("ok", "audio", "wav")


def _check_avi(f: _File) -> Integrity:
    offset, first = 0, True
    lists: set[bytes] = set()
    while offset < f.size:
        header = f.read(offset, 12)
        if not first and not header.strip(b"\0") and f.zeros_from(offset):
            break
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != (b"AVI " if first else b"AVIX"):
            return Integrity(
                "damaged", "video", "avi", f"unexpected bytes at offset {offset}: not a RIFF AVI/AVIX chunk"
            )
        size = _le32(header[4:8])
        if offset + 8 + size > f.size:
            return Integrity("damaged", "video", "avi", _past_end("RIFF", size, f, offset + 8).reason)
        chunks, damage = _walk_riff(f, offset + 12, offset + 8 + size)
        if damage is not None:
            return Integrity("damaged", "video", "avi", damage.reason)
        lists |= {c[0] for c in chunks if c[0].startswith(b"LIST:")}
        offset += 8 + size + (size & 1)
        first = False
    missing = [n for n in (b"hdrl", b"movi") if b"LIST:" + n not in lists]
    if missing:
        return Integrity(
            "damaged", "video", "avi", f"{', '.join(m.decode() for m in missing)} list not found"
        )
    return Integrity("ok", "video", "avi")


# --- Photos ---------------------------------------------------------------------------------


def _check_jpeg(f: _File) -> Integrity:
    end, skipped = f.size, 0
    while end > 0:
        n = min(65536, end)
        block = f.read(end - n, n).rstrip(b"\0")
        if block:
            end = end - n + len(block)
            break
        end -= n
        skipped += n
        if skipped > _MAX_ZERO_TAIL:
            return Integrity(
                "damaged", "photo", "jpeg", f"more than {_MAX_ZERO_TAIL} zero bytes at the end: cut short"
            )
    if end < 4 or f.read(end - 2, 2) != b"\xff\xd9":
        return Integrity("damaged", "photo", "jpeg", "JPEG end marker (FF D9) not found: cut short")
    return Integrity("ok", "photo", "jpeg")


def _check_png(f: _File) -> Integrity:
    offset, count = 8, 0
    while offset < f.size:
        count += 1
        if count > _MAX_ENTRIES:
            return Integrity("damaged", "photo", "png", f"more than {_MAX_ENTRIES} PNG chunks")
        header = f.read(offset, 8)
        if len(header) < 8:
            return Integrity("damaged", "photo", "png", f"chunk header at offset {offset} cut short")
        length, chunk_type = _be32(header), header[4:8]
        if length > 0x7FFFFFFF:
            return Integrity(
                "damaged", "photo", "png", f"chunk at offset {offset} declares an impossible length {length}"
            )
        if offset + 12 + length > f.size:
            return Integrity(
                "damaged", "photo", "png", _past_end(_name(chunk_type), length + 12, f, offset).reason
            )
        if chunk_type == b"IEND":
            return Integrity("ok", "photo", "png")
        offset += 12 + length
    return Integrity("damaged", "photo", "png", "IEND chunk not found: cut short")


# --- Matroska / WebM ------------------------------------------------------------------------


def _vint(data: bytes, pos: int) -> tuple[int, int, bool] | None:
    """An EBML variable-length size at ``pos``: (value, length, unknown size) or None."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        return None
    value = data[pos] & (0xFF >> length)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, length, value == (1 << (7 * length)) - 1


def _check_ebml(f: _File, head: bytes) -> Integrity:
    size = _vint(head, 4)
    if size is None:
        return Integrity("damaged", "video", "mkv", "EBML header cut short")
    header_size, size_len, _ = size
    body = f.read(4 + size_len, min(header_size, 4096))
    container = "webm" if b"\x42\x82\x84webm" in body else "mkv"
    seg_at = 4 + size_len + header_size
    seg = f.read(seg_at, 12)
    if len(seg) < 5:
        return Integrity("damaged", "video", container, "Segment element not found: cut short")
    if seg[:4] != b"\x18\x53\x80\x67":
        return Integrity("damaged", "video", container, f"no Segment element at offset {seg_at}")
    parsed = _vint(seg, 4)
    if parsed is None:
        return Integrity("damaged", "video", container, "Segment size cut short")
    seg_size, seg_len, unknown = parsed
    if unknown:
        return Integrity(
            "ok", "video", container, "Segment size unknown (written live); completeness not checked"
        )
    data_at = seg_at + 4 + seg_len
    if data_at + seg_size > f.size:
        return Integrity("damaged", "video", container, _past_end("Segment", seg_size, f, data_at).reason)
    return Integrity("ok", "video", container)


# --- MPEG transport stream ------------------------------------------------------------------


def _ts_packet_size(head: bytes, size: int) -> int | None:
    for packet, lead in ((188, 0), (192, 4)):
        if (
            size >= 2 * packet
            and len(head) > packet + lead
            and head[lead] == 0x47
            and head[packet + lead] == 0x47
            and (len(head) <= 2 * packet + lead or head[2 * packet + lead] == 0x47)
        ):
            return packet
    return None


def _check_ts(f: _File, packet: int) -> Integrity:
    container = "ts" if packet == 188 else "m2ts"
    if f.size % packet:
        return Integrity(
            "damaged",
            "video",
            container,
            f"{f.size} bytes is not a whole number of {packet}-byte packets: cut short",
        )
    return Integrity("ok", "video", container)


# --- MP3 / AAC ------------------------------------------------------------------------------


def _mpeg_audio(b: bytes) -> str | None:
    """``"aac"`` for an ADTS header, ``"mp3"`` for an MPEG audio frame header, else None."""
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return None
    layer = (b[1] >> 1) & 3
    if layer == 0:
        return "aac" if (b[1] & 0xF0) == 0xF0 and ((b[2] >> 2) & 0xF) < 13 else None
    version = (b[1] >> 3) & 3
    if version == 1 or (b[2] >> 4) == 0xF or ((b[2] >> 2) & 3) == 3:
        return None
    return "mp3"


def _check_id3(f: _File, head: bytes) -> Integrity:
    if len(head) < 10 or any(c & 0x80 for c in head[6:10]):
        return Integrity("not_media", reason="malformed ID3 tag (its size bytes are not 7-bit)")
    tag_size = 0
    for c in head[6:10]:
        tag_size = (tag_size << 7) | c
    end = 10 + tag_size + (10 if head[5] & 0x10 else 0)
    if end >= f.size:
        return Integrity(
            "damaged",
            "audio",
            "mp3",
            f"ID3 tag declares {tag_size} bytes, file has {f.size - 10} after offset 10 (no audio after it)",
        )
    codec = _mpeg_audio(f.read(end, 4)) or "mp3"
    return Integrity("ok", "audio", codec, _NOT_CHECKED.format(codec.upper()))
