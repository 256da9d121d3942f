"""Evidence packages: a case exported as a BagIt bag that a court can check without this system.

The package is a BagIt 1.0 bag (RFC 8493, tag files in UTF-8) at ``OUTDIR/{case_key}/``, or
that folder zipped as ``OUTDIR/{case_key}.zip`` (one top-level folder, ZIP64)::

    bagit.txt                      BagIt-Version 1.0, UTF-8
    bag-info.txt                   Bagging-Date, Payload-Oxum, External-Identifier (the bureau's
                                   number), Case-Number, Case-Key, Exported-By, Export-Reason, ...
    manifest-sha256.txt            SHA-256 of every payload file ("digest  path", sha256sum -c)
    sm3-digests.txt                SM3 of every payload file, same line format (only when the
                                   catalog holds SM3 digests; see below why it is not a manifest)
    tagmanifest-sha256.txt         SHA-256 of each tag file above
    data/case.json                 the case and its items in time order, with every number,
                                   time (UTC, ``...Z``), officer, device, digest and file name
    data/index.html                a self-contained page: timeline, players, digests (中文/English),
                                   times in the settings' zone with their offset shown
    data/originals/{item_no}.{ext} each recording, decrypted: the package is for a court
    data/documents/{item_no}.{ext} each written record, decrypted
    data/proxies/{item_no}-{kind}.{ext}   proxies, posters, sheets, waveforms (``with_proxies``)
    data/custody/events.jsonl      the disclosed custody events (format below)
    data/custody/links.tsv         their links up to the checkpoints
    data/custody/checkpoint.json   the signed statement of the checkpoint covering the export
    data/custody/checkpoint.sig    its raw 64-byte Ed25519 signature
    data/custody/checkpoints/      earlier checkpoints the links end at ({n:08d}.json, .sig)
    data/custody/keys/{fp}.pem     the signers' public keys (trust comes from the fingerprint)
    data/custody/keys/changes/     the signing keys' history: key-change and retirement
                                   statements with their signatures (catalog.keyhistory)

An export for someone without the protected grant (``include_protected=False``) withholds
protected items: no file of theirs, and in ``case.json``, ``index.html`` and ``bag-info.txt``
(``Withheld-Items``) only their item numbers, marked ``withheld: protected``. Their custody
events, and any other event that names one of their identifiers, stay in the package only as
hash-only links (as events of other subjects do), so the package still verifies; the
``exported`` event lists the withheld item numbers.

Every payload file is streamed from storage (bounded memory) and hashed while it is written;
an original or document whose bytes do not give the catalog's SHA-256 (or SM3) aborts the
export with ``CheckFailed`` naming the item: a package never carries altered evidence. The
bag is built in a hidden temporary folder beside the target and renamed at the end, so a
failure leaves no half bag.

Why SM3 is a tag file and not ``manifest-sm3.txt``: RFC 8493 takes manifest algorithm names
from the IANA hash-name registry, which has no SM3. A validator meets an unknown manifest
either by skipping it (bagit-python looks only for algorithms its hashlib guarantees, so
nothing would check it) or by refusing the whole bag. ``sm3-digests.txt`` is an ordinary tag
file, covered by the tag manifest, that bagit tools carry along and ``verify-package``
checks.

Custody, format 2 (docs/CUSTODY-FORMAT.md describes every byte). Whose events: the case key,
the numbers of every item ever in the case and the archive numbers of the recordings in it.
When the package is prepared, one custody ``exported`` event commits to the SHA-256 of every
file under ``data/`` outside ``data/custody/`` (``files``; nothing there names the checkpoint),
the numbers of the disclosed events (``events``), the withheld ones with their
``subject_prev`` (``withheld_events``) and each subject's last event hash but the case's
(``heads``). The package is finished once a checkpoint covers that event: the command line signs
one at once; from the web the package stays pending until the next timer checkpoint
(``finish_pending``). ``events.jsonl`` then carries every disclosed event and the exported one,
``links.tsv`` the stretches from each disclosed or withheld event to the first checkpoint after
it, and the checkpoints from the earliest of those to the package's own (they chain by
``prev``), so a verifier recomputes every link, walks each subject's events back through
``subject_prev`` (an omitted event is a missing step), and checks every payload digest
against the signed commitment. What a range of v1 events (from before the upgrade) cannot
prove: their links carry no body hash, so a v1 event outside the package cannot be
recomputed, and v1 events have no ``subject_prev``; a package binds older items through their
v2 ``attested`` events instead.
"""

from __future__ import annotations

import bisect
import html
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.checkpoints import link_line, make_and_publish
from archive.context import ServiceContext
from archive.digest import Hasher
from archive.encryption import Keys
from archive.layout import extension
from archive.reading import hash_stored
from archive.store import ObjectStore
from archive.timestamping import TimestampAuthority
from catalog import cases, custody, keyhistory
from catalog.actions import Action
from catalog.canonical import format_instant, parse_instant
from catalog.chain import CustodyEvent
from catalog.checkpoint import Anchors, Checkpoint, fingerprint, public_key_pem
from catalog.errors import CheckFailed, InvalidInput
from catalog.models import CheckpointRow, Derivative, Document, Recording
from catalog.playback import plays_as_is
from catalog.timeline import ItemView
from catalog.views import case_items

from . import custody_text, recipes

BAGIT_VERSION = "1.0"
SOFTWARE = "evidence-archive"
WRITE_BUFFER = 1 << 20

#: ``progress(path_in_bag, bytes_done, bytes_total)`` after each chunk of a payload file.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExportResult:
    """Where the package is, how many case items it holds, and its size on disk.

    ``bytes`` is the size of the zip file, or of every file in the bag folder. ``pending``:
    prepared, waiting for a checkpoint to cover ``event`` (``path`` is where it will be).
    """

    path: Path
    items: int
    bytes: int
    pending: bool = False
    event: int | None = None
    checkpoint: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "items": self.items,
            "bytes": self.bytes,
            "pending": self.pending,
            "event": self.event,
            "checkpoint": self.checkpoint,
        }


@dataclass
class _PayloadFile:
    rel: str  # path inside the bag, "data/..."
    sha256: str
    size: int
    sm3: str | None = None


@dataclass(frozen=True)
class _Derived:
    """A proxy, poster, sheet or waveform to copy beside its original."""

    kind: str
    file: str  # relative to data/
    sha256: str | None
    size: int | None
    content_type: str | None
    key: str
    version: str | None
    encrypted: bool

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
        }


@dataclass
class _Entry:
    """One case item with the facts only the catalog rows hold (names, SM3, derivatives)."""

    view: ItemView
    file: str  # relative to data/
    sm3: str | None = None
    original_name: str | None = None
    content_type: str | None = None
    derivatives: list[_Derived] = field(default_factory=list)
    plays_as_is: bool = False  # browsers play the original: the page plays it, not a proxy


# --- the export ---------------------------------------------------------------------------


def export_case(
    ctx: ServiceContext,
    case_name: str,
    outdir: Path,
    *,
    signing_key: Ed25519PrivateKey | None,
    reason: str,
    with_proxies: bool = False,
    zip_it: bool = False,
    source_organization: str | None = None,
    progress: Progress | None = None,
    include_protected: bool = True,
    tsa: TimestampAuthority | None = None,
    planned: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the case's evidence package to ``outdir`` (see the module docstring).

    The context's clock dates the export event, the checkpoint and Bagging-Date (its own
    offset's day). With ``signing_key`` a checkpoint is signed at once and the package is
    finished; without it (the web server never holds the key) the package waits, prepared,
    in ``outdir`` until a checkpoint covers its ``exported`` event: ``finish_pending`` then
    finishes it, and the result says ``pending`` until then.
    ``include_protected=False`` withholds protected items (see the module docstring).
    ``planned(files, bytes)`` is told what the payload will hold before it is written;
    ``progress`` follows every chunk.
    Raises ``NotFound`` for an unknown case, ``InvalidInput`` when the target exists,
    ``CheckFailed`` when a stored item is missing or does not give its recorded digest.
    """
    sessions, store, actor, now = ctx.sessions, ctx.store, ctx.actor, ctx.now()
    kek = ctx.kek() if ctx.load_kek else None
    if now.tzinfo is None:
        raise InvalidInput("the export time must carry a time zone")
    with sessions() as session:
        case = cases.get_case(session, case_name)
        header = _case_header(case)
        every_item = case_items(session, case, include_unlinked=True)
        entries = _entries(session, [i for i in every_item if not i.unlinked], with_proxies)
    case_key = header["case_key"]
    withheld: list[str] = []
    hidden: set[str] = set()  # identifiers no disclosed event may name
    if not include_protected:
        withheld = sorted(e.view.item_no for e in entries if e.view.protected)
        hidden = _identifiers([e for e in entries if e.view.protected])
        hidden |= {x for i in every_item if i.protected for x in (i.archive_no, i.sha256, i.storage_key) if x}
        entries = [e for e in entries if not e.view.protected]
        every_item = [i for i in every_item if not i.protected]
    subjects = _subjects(case_key, every_item)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / (f"{case_key}.zip" if zip_it else case_key)
    if target.exists() or target.is_symlink():
        raise InvalidInput(
            f"{target} exists already", hint="a package is never overwritten; choose another folder"
        )
    work = Path(tempfile.mkdtemp(prefix=f".{case_key}.", suffix=".partial", dir=outdir))
    exported: CustodyEvent | None = None
    try:
        bag = work / case_key
        if planned is not None:
            planned(
                sum(1 + len(e.derivatives) for e in entries),
                sum(e.view.size + sum(d.size or 0 for d in e.derivatives) for e in entries),
            )
        payload = _write_evidence(store, bag, entries, kek, progress)
        # Nothing under data/ outside data/custody/ names the checkpoint, so the exported
        # event can commit to every one of those files.
        export_facts = {
            "at": format_instant(now),
            "by": actor,
            "reason": reason.strip(),
            "with_proxies": with_proxies,
        }
        document = _case_document(header, entries, export_facts, withheld)
        payload.append(_write_small(bag, "data/case.json", _json_bytes(document)))
        page = _index_html(header, entries, export_facts, withheld, zone=ctx.policy.zone)
        payload.append(_write_small(bag, "data/index.html", page.encode("utf-8")))

        # The disclosed events and subject heads are one cut: read up to the head first, then
        # what came since under the chain's lock (held briefly: page views wait for it).
        with sessions() as session:
            cut, _ = custody.head(session)
            disclosure = _Disclosure()
            disclosure.read(session, subjects, case_key, hidden, upto=cut)
        with sessions.begin() as session:
            custody.lock_head(session)
            disclosure.read(session, subjects, case_key, hidden, after=cut)
            disclosed = sorted(disclosure.disclosed)
            exported = custody.append(
                session,
                actor=actor,
                action=Action.EXPORTED,
                subject=case_key,
                details={
                    "reason": reason.strip(),
                    "items": len(entries),
                    "item_nos": [e.view.item_no for e in entries],
                    "destination": target.name,
                    "with_proxies": with_proxies,
                    "files": {p.rel: p.sha256 for p in sorted(payload, key=lambda p: p.rel)},
                    "events": disclosed,
                    "withheld_events": disclosure.withheld,
                    "heads": disclosure.heads,
                }
                | ({"withheld": withheld, "withheld_why": "protected"} if withheld else {}),
                now=now,
            )
        pending = _Pending(
            case_key=case_key,
            seq=exported.seq,
            zip=zip_it,
            target=target.name,
            header=header,
            export=export_facts,
            items=len(entries),
            organization=source_organization,
            sm3=any(e.sm3 for e in entries),
            withheld=withheld,
            payload=[[p.rel, p.sha256, p.size, p.sm3] for p in payload],
            events=disclosed,
            withheld_events=sorted(int(k) for k in disclosure.withheld),
        )
        _write_file(work / PENDING, _json_bytes(pending.__dict__))
        if signing_key is not None:
            make_and_publish(ctx.at(now), signing_key, tsa=tsa)
        result = finish_pending(sessions, work)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if exported is not None and isinstance(exc, Exception):
            _record_failure(sessions, actor, case_key, exported.seq, exc, now)
        raise
    return result


PENDING = "pending.json"


@dataclass
class _Pending:
    """What finishing a prepared package needs, kept beside its bag (never inside it)."""

    case_key: str
    seq: int
    zip: bool
    target: str
    header: dict[str, Any]
    export: dict[str, Any]
    items: int
    organization: str | None
    sm3: bool
    withheld: list[str]
    payload: list[list[Any]]
    events: list[int]
    withheld_events: list[int]


def find_pending(root: Path, event: int, actor: str) -> Path | None:
    """The prepared package of export event ``event`` made by ``actor``, in a folder under
    ``root`` (one level down, as the web makes them); None when there is none. Folders that
    vanish while it looks (another package served and cleaned up) are passed over; links are
    never followed."""
    for folder in _folders(Path(root)):
        for work in _folders(folder):
            if not (work.name.startswith(".") and work.name.endswith(".partial")):
                continue
            try:
                facts = json.loads((work / PENDING).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if facts.get("seq") == event and facts.get("export", {}).get("by") == actor:
                return work
    return None


def _folders(path: Path) -> list[Path]:
    """The folders in ``path`` (not links to folders), by name; none when it is gone."""
    try:
        with os.scandir(path) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def finish_pending(sessions: sessionmaker[Session], work: Path) -> ExportResult:
    """Finish a prepared package once a checkpoint covers its ``exported`` event: write the
    custody proof and the tag files, then give the package its name. Until then the result
    is ``pending`` and nothing changes; run again after the next checkpoint."""
    facts = _Pending(**json.loads((work / PENDING).read_text(encoding="utf-8")))
    bag = work / facts.case_key
    target = work.parent / facts.target
    with sessions() as session:
        covering = session.execute(
            select(CheckpointRow.n).where(CheckpointRow.seq >= facts.seq, CheckpointRow.v == 2).limit(1)
        ).scalar()
    if covering is None:
        return ExportResult(target, facts.items, 0, pending=True, event=facts.seq)
    payload = [_PayloadFile(rel, sha, size, sm3) for rel, sha, size, sm3 in facts.payload]
    cp, proof = _write_proof(sessions, bag, facts.events + [facts.seq], facts.withheld_events, facts.seq)
    payload += proof
    export = facts.export | {
        "event": facts.seq,
        "checkpoint": cp.n,
        "checkpoint_seq": cp.seq,
        "key": cp.key,
    }
    _write_tags(
        bag,
        payload,
        facts.header,
        export,
        parse_instant(facts.export["at"]),
        facts.items,
        facts.organization,
        sm3=facts.sm3,
        withheld=facts.withheld,
    )
    if facts.zip:
        partial = work / f"{facts.case_key}.zip"
        _zip_folder(bag, partial, facts.case_key)
        _publish(partial, target)
    else:
        _publish(bag, target)
    shutil.rmtree(work, ignore_errors=True)
    return ExportResult(target, facts.items, _size_on_disk(target), event=facts.seq, checkpoint=cp.n)


def _case_header(case: Any) -> dict[str, Any]:
    return {
        "number": case.number,
        "case_key": case.case_key,
        "title": case.title,
        "status": case.status,
        "type": case.case_type,
        "major": bool(case.major),
        "opened": case.opened_on.isoformat(),
        "closed": case.closed_on.isoformat() if case.closed_on else None,
    }


def _subjects(case_key: str, items: list[ItemView]) -> list[str]:
    """Whose events go in the package: the case, every item number it ever gave, and the
    recordings it holds now (a recording unlinked as a mistake keeps its own history out)."""
    found = [case_key] + [i.item_no for i in items]
    found += [i.archive_no for i in items if i.archive_no and not i.unlinked]
    return list(dict.fromkeys(found))


def _identifiers(entries: list[_Entry]) -> set[str]:
    """What would identify a withheld item in a custody record: numbers, digests, names, keys."""
    found: set[str] = set()
    for e in entries:
        v = e.view
        found |= {x for x in (v.archive_no, v.sha256, v.storage_key, e.sm3, e.original_name) if x}
        found |= {x for d in e.derivatives for x in (d.key, d.sha256) if x}
    return found


def _names_any(record: bytes, hidden: Collection[str]) -> bool:
    text = record.decode("utf-8")
    # A name with quotes or backslashes appears escaped in the canonical JSON.
    return any(h in text or json.dumps(h, ensure_ascii=False)[1:-1] in text for h in hidden)


def _entries(session: Session, items: list[ItemView], with_proxies: bool) -> list[_Entry]:
    """Join the catalog facts the item views lack, one query per table."""
    archive_nos = [i.archive_no for i in items if i.archive_no]
    doc_keys = [i.storage_key for i in items if not i.archive_no and i.storage_key]
    recs = (
        {
            r.archive_no: r
            for r in session.execute(select(Recording).where(Recording.archive_no.in_(archive_nos))).scalars()
        }
        if archive_nos
        else {}
    )
    docs = (
        {
            d.storage_key: d
            for d in session.execute(select(Document).where(Document.storage_key.in_(doc_keys))).scalars()
        }
        if doc_keys
        else {}
    )
    derivatives: dict[int, list[Derivative]] = {}
    if with_proxies and recs:
        for d in session.execute(
            select(Derivative)
            .where(Derivative.recording_id.in_([r.id for r in recs.values()]), Derivative.status == "ok")
            .order_by(Derivative.id)
        ).scalars():
            derivatives.setdefault(d.recording_id, []).append(d)
    entries = []
    for view in items:
        row: Recording | Document | None = (
            recs.get(view.archive_no) if view.archive_no else docs.get(view.storage_key or "")
        )
        folder = "documents" if view.kind == "document" else "originals"
        ext = extension(view.storage_key or "")
        entry = _Entry(
            view,
            f"{folder}/{view.item_no}.{ext}",
            sm3=getattr(row, "sm3", None),
            original_name=getattr(row, "original_name", None),
            content_type=getattr(row, "content_type", None),
        )
        if isinstance(row, Recording):
            entry.plays_as_is = plays_as_is(row.kind, json.loads(row.media_info or "{}"), damaged=row.damaged)
            latest: dict[str, Derivative] = {}
            for d in derivatives.get(row.id, []):
                latest[d.kind] = d  # the newest of each kind
            entry.derivatives = [
                _Derived(
                    kind,
                    f"proxies/{view.item_no}-{kind}.{extension(d.storage_key or '')}",
                    d.sha256,
                    d.size,
                    d.content_type,
                    d.storage_key or "",
                    d.storage_version,
                    d.encrypted,
                )
                for kind, d in sorted(latest.items())
            ]
        entries.append(entry)
    return entries


# --- payload: evidence files ----------------------------------------------------------------


def _write_evidence(
    store: ObjectStore, bag: Path, entries: list[_Entry], kek: Keys | None, progress: Progress | None
) -> list[_PayloadFile]:
    want_sm3 = any(e.sm3 for e in entries)
    written = []
    for entry in entries:
        view = entry.view
        label = f"{view.item_no} ({view.archive_no})" if view.archive_no else view.item_no
        if not view.storage_key:
            raise CheckFailed(f"{label} has no stored object", hint="run `evidence verify`")
        got = _copy(
            store,
            view.storage_key,
            view.storage_version,
            view.encrypted,
            kek,
            bag,
            f"data/{entry.file}",
            view.size,
            label,
            want_sm3,
            progress,
        )
        if got.sha256 != view.sha256 or got.size != view.size or (entry.sm3 and got.sm3 != entry.sm3):
            found, recorded = (
                (f"sha256 {got.sha256} ({got.size} bytes)", f"{view.sha256} ({view.size} bytes)")
                if got.sha256 != view.sha256 or got.size != view.size
                else (f"sm3 {got.sm3}", f"{entry.sm3}")
            )
            raise CheckFailed(
                f"{label}: the stored bytes give {found}, the catalog records {recorded}; "
                "nothing was exported",
                hint="the stored copy was altered or replaced: run `evidence verify` and report it",
                item_no=view.item_no,
            )
        written.append(got)
        for d in entry.derivatives:
            got = _copy(
                store,
                d.key,
                d.version,
                d.encrypted,
                kek,
                bag,
                f"data/{d.file}",
                d.size or 0,
                f"{label} {d.kind}",
                want_sm3,
                progress,
            )
            if d.sha256 and got.sha256 != d.sha256:
                raise CheckFailed(
                    f"{label}: the stored {d.kind} gives sha256 {got.sha256}, "
                    f"the catalog records {d.sha256}; nothing was exported",
                    hint="run `evidence verify`",
                    item_no=view.item_no,
                )
            written.append(got)
    return written


def _copy(
    store: ObjectStore,
    key: str,
    version: str | None,
    encrypted: bool,
    kek: Keys | None,
    bag: Path,
    rel: str,
    total: int,
    label: str,
    sm3: bool,
    progress: Progress | None,
) -> _PayloadFile:
    """Stream one stored object (decrypted) into the bag, hashing what is written."""
    path = bag / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb", buffering=0) as out:
        written = 0

        def write(chunk: bytes) -> None:
            nonlocal written
            _write_all(out, chunk)
            written += len(chunk)
            if progress is not None:
                progress(rel, written, total)

        got = hash_stored(
            store, key, version, encrypted=encrypted, kek=kek if encrypted else None, sm3=sm3, sink=write
        )
        if got.problem is None:
            os.fsync(out.fileno())
    if got.problem == "missing":
        raise CheckFailed(
            f"{label}: the stored object is missing ({key}); nothing was exported",
            hint="run `evidence verify`",
        ) from got.error
    if got.problem == "undecryptable":
        raise CheckFailed(
            f"{label}: the stored ciphertext fails authentication ({got.error}); nothing was exported",
            hint="run `evidence verify`",
        ) from got.error
    assert got.sha256 is not None
    return _PayloadFile(rel, got.sha256, got.size, got.sm3)


def _write_all(out: BinaryIO, chunk: bytes | memoryview) -> None:
    view = memoryview(chunk)
    while view:
        n = out.write(view)
        view = view[n:]


def _write_file(path: Path, data: bytes) -> None:
    """Written and flushed to disk: the rename that publishes the bag must not outrun it."""
    with open(path, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _write_small(bag: Path, rel: str, data: bytes) -> _PayloadFile:
    path = bag / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_file(path, data)
    hasher = Hasher(sm3=True)  # cheap on small files; used when the bag lists SM3
    hasher.update(data)
    d = hasher.digests()
    return _PayloadFile(rel, d.sha256, d.size, d.sm3)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False).encode("utf-8") + b"\n"


# --- payload: custody ------------------------------------------------------------------------


@dataclass
class _Disclosure:
    """What a package discloses of the custody chain: the disclosed event numbers, the
    withheld events as {seq: subject_prev}, and each subject's last event hash but the case's.

    An event naming one of ``hidden`` (a withheld item's identifiers) is withheld: the
    package carries only its link, and the exported event commits to its ``subject_prev`` so
    that a verifier can walk each subject's events back past it.
    """

    disclosed: set[int] = field(default_factory=set)
    withheld: dict[str, str | None] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)

    def read(
        self,
        session: Session,
        subjects: list[str],
        case_key: str,
        hidden: Collection[str],
        *,
        after: int = 0,
        upto: int | None = None,
    ) -> None:
        """Add the events about ``subjects`` numbered after ``after`` and up to ``upto``."""
        for event in custody.events_about(session, subjects, after_seq=after, upto_seq=upto):
            if hidden and _names_any(event.line(), hidden):
                self.withheld[str(event.seq)] = event.subject_prev
            else:
                self.disclosed.add(event.seq)
            if event.subject != case_key and event.subject is not None:
                self.heads[event.subject] = event.hash


def _write_proof(
    sessions: sessionmaker[Session], bag: Path, disclosed: list[int], withheld: list[int], exported: int
) -> tuple[Checkpoint, list[_PayloadFile]]:
    """``data/custody/``: the disclosed events, the links from each disclosed or withheld event
    to the first v2 checkpoint after it, those checkpoints (chained to the package's own),
    and their signers' public keys. Streamed: links may be many."""
    folder = bag / "data" / "custody"
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "keys").mkdir(exist_ok=True)
    files: list[_PayloadFile] = []
    with sessions() as session:
        rows = session.execute(
            select(CheckpointRow).where(CheckpointRow.v == 2).order_by(CheckpointRow.n)
        ).scalars()
        v2, tokens = [], {}
        for row in rows:
            v2.append(custody.checkpoint_from_row(row))
            if row.tsa_token:
                tokens[row.n] = row.tsa_token
        seqs = [cp.seq for cp in v2]

        def covering(seq: int) -> Checkpoint:
            return v2[bisect.bisect_left(seqs, seq)]

        final = covering(exported)
        points = sorted(set(disclosed) | set(withheld))
        ranges: list[tuple[int, int]] = []
        for point in points:
            end = covering(point).seq
            if ranges and point <= ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
            else:
                ranges.append((point, end))
        first = min(covering(p).n for p in points)
        included = [cp for cp in v2 if first <= cp.n <= final.n]

        files.append(
            _stream(folder / "events.jsonl", bag, (e.line() for e in custody.events_at(session, disclosed)))
        )
        files.append(
            _stream(
                folder / "links.tsv",
                bag,
                (
                    link_line(e)
                    for a, b in ranges
                    for e in custody.events(session, after_seq=a - 1, limit=b - a + 1)
                ),
            )
        )
    for cp in included:
        stem = "data/custody/checkpoint" if cp.n == final.n else f"data/custody/checkpoints/{cp.n:08d}"
        files.append(_write_small(bag, f"{stem}.json", cp.signed_bytes()))
        files.append(_write_small(bag, f"{stem}.sig", cp.signature_bytes()))
        if cp.n in tokens:  # the TSA's token over the statement, when it has come
            files.append(_write_small(bag, f"{stem}.tsr", tokens[cp.n]))
    # The whole key history (a few small files): a checker who pinned any one key of it,
    # the oldest or the newest, follows the statements to the signers of these checkpoints.
    with sessions() as session:
        changes, retirements, _ = keyhistory.recorded(session)
        material = Anchors()
        keyhistory.add_keys(material, session)
    statements: list[keyhistory.KeyChange | keyhistory.Retirement] = [*changes, *retirements]
    if statements:
        (folder / "keys" / "changes").mkdir(exist_ok=True)
    signers = {cp.key for cp in included if cp.key}
    for statement in statements:
        for name, data in statement.files().items():
            files.append(_write_small(bag, f"data/custody/keys/changes/{name}", data))
        if isinstance(statement, keyhistory.KeyChange):
            signers |= {statement.old, statement.new}
        else:
            signers |= {statement.key, statement.by}
    for fp in sorted(signers):
        raw = material.keys.get(fp)
        if raw and fingerprint(raw) == fp:
            files.append(_write_small(bag, f"data/custody/keys/{fp}.pem", public_key_pem(raw)))
    return final, files


def _stream(path: Path, bag: Path, lines: Iterable[bytes]) -> _PayloadFile:
    hasher = Hasher(sm3=True)
    with open(path, "xb", buffering=WRITE_BUFFER) as out:
        for line in lines:
            hasher.update(line)
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    d = hasher.digests()
    return _PayloadFile(path.relative_to(bag).as_posix(), d.sha256, d.size, d.sm3)


# --- case.json and index.html ------------------------------------------------------------


def _instant(value: datetime | None) -> str | None:
    return format_instant(value) if value else None


def _item_record(entry: _Entry) -> dict[str, Any]:
    v = entry.view
    record: dict[str, Any] = {
        "item_no": v.item_no,
        "kind": v.kind,
        "time": _instant(v.time),
        "sha256": v.sha256,
        "sm3": entry.sm3,
        "size": v.size,
        "file": entry.file,
        "original_name": entry.original_name,
        "content_type": entry.content_type,
        "officer": v.officer,
        "protected": v.protected,
        "linked_at": _instant(v.linked_at),
    }
    if v.archive_no:
        record |= {
            "archive_no": v.archive_no,
            "device": v.device,
            "station": v.station,
            "duration_s": v.duration_s,
            "damaged": v.damaged,
            "important": v.important,
        }
    else:
        record |= {"doc_type": v.doc_type, "doc_number": v.doc_number}
    record["derivatives"] = [d.record() for d in entry.derivatives]
    record["custody"] = {
        "events": v.custody.get("events", 0),
        "actions": v.custody.get("actions", {}),
        "last": _instant(v.custody.get("last")),
    }
    return record


def _withheld_record(item_no: str) -> dict[str, Any]:
    return {"item_no": item_no, "withheld": "protected"}


def _case_document(
    header: dict[str, Any], entries: list[_Entry], export: dict[str, Any], withheld: list[str]
) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "evidence-package",
        "case": header,
        "export": export,
        "custody": {
            "format": 2,
            "events": "custody/events.jsonl",
            "links": "custody/links.tsv",
            "checkpoint": "custody/checkpoint.json",
            "signature": "custody/checkpoint.sig",
            "keys": "custody/keys/",
        },
        # Withheld items last, by number: their place in the timeline would tell their time.
        "items": [_item_record(e) for e in entries] + [_withheld_record(n) for n in withheld],
    }


_KIND_LABELS = {
    "document": "文书 document",
    "video": "视频 video",
    "audio": "音频 audio",
    "photo": "照片 photo",
}

_STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#111}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;padding:.35em;
vertical-align:top;text-align:left}th{background:#eee}code{font-size:.8em;word-break:break-all}
video,img{max-width:360px;max-height:240px}dt{font-weight:bold}section{margin-top:1.5em}
"""


def _media(entry: _Entry) -> str:
    """A player for the original or its proxy inside the package (never anything outside it)."""
    files = {d.kind: d.file for d in entry.derivatives}
    poster = files.get("poster")
    # The original itself where browsers play it (its file sits beside this page in data/).
    proxy = entry.file if entry.plays_as_is and entry.view.kind in ("video", "audio") else files.get("proxy")
    e = html.escape
    if proxy and entry.view.kind == "video":
        poster_attr = f' poster="{e(poster)}"' if poster else ""
        return f'<video controls preload="none" src="{e(proxy)}"{poster_attr}></video>'
    if proxy and entry.view.kind == "audio":
        return f'<audio controls preload="none" src="{e(proxy)}"></audio>'
    if proxy and entry.view.kind == "photo":
        return f'<img alt="{e(entry.view.item_no)}" src="{e(proxy)}">'
    if poster:
        return f'<img alt="{e(entry.view.item_no)}" src="{e(poster)}">'
    if entry.view.kind == "document":
        return ""
    return "无代理文件 / no proxy in this package"


def _index_html(
    header: dict[str, Any],
    entries: list[_Entry],
    export: dict[str, Any],
    withheld: list[str],
    *,
    zone: ZoneInfo,
) -> str:
    """The package's page. Its names for the four numbers are the pages' (the README's
    glossary); its times are in the settings' zone with the offset on each, like the pages'."""
    e = html.escape

    def local(moment: datetime | None) -> str:
        return custody_text.local_time(moment, zone, offset=True)

    rows = []
    for entry in entries:
        v = entry.view
        number = v.archive_no or v.doc_type or ""
        extra = [f'<a href="{e(d.file)}">{e(d.kind)}</a>' for d in entry.derivatives]
        rows.append(
            "<tr>"
            f"<td>{e(v.item_no)}</td><td>{e(local(v.time))}</td>"
            f"<td>{e(_KIND_LABELS.get(v.kind, v.kind))}</td><td>{e(number)}"
            f"{'<br>' + e(v.doc_number) if v.doc_number else ''}</td>"
            f"<td>{e(v.officer or '')}</td><td>{e(v.device or '')}</td>"
            f'<td><a href="{e(entry.file)}">{e(entry.original_name or entry.file)}</a>'
            f"{'<br>' + ' · '.join(extra) if extra else ''}</td>"
            f"<td><code>{e(v.sha256)}</code>"
            f"{'<br><code>SM3 ' + e(entry.sm3) + '</code>' if entry.sm3 else ''}"
            f"<br>{v.size:,} B</td><td>{_media(entry)}</td></tr>"
        )
    for item_no in withheld:
        rows.append(
            f'<tr class="withheld"><td>{e(item_no)}</td>'
            '<td colspan="8">未提供：受保护记录 withheld: protected</td></tr>'
        )
    title = f"{header['number']} ({header['case_key']})"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; style-src 'unsafe-inline'">
<title>证据包 Evidence package {e(title)}</title><style>{_STYLE}</style></head><body>
<h1>证据包 Evidence package</h1>
<dl>
<dt>案号 Case number</dt><dd>{e(header["number"])}</dd>
<dt>案件代码 Case key</dt><dd>{e(header["case_key"])}</dd>
<dt>案由 Title</dt><dd>{e(header.get("title") or "")}</dd>
<dt>导出时间 Exported at</dt><dd>{e(local(parse_instant(export["at"])))}</dd>
<dt>导出人 Exported by</dt><dd>{e(export["by"])}</dd>
<dt>导出事由 Reason</dt><dd>{e(export["reason"])}</dd>
<dt>签名检查点 Signed checkpoint</dt><dd>见 <code>custody/checkpoint.json</code> /
see <code>custody/checkpoint.json</code> (<code>bag-info.txt</code>: Custody-Checkpoint, Custody-Key)</dd>
</dl>
<section><h2>时间线 Timeline</h2>
<table><thead><tr><th>共同编号 Item number</th><th>时间 Time</th><th>类型 Kind</th>
<th>档案号 / 文书类型 Archive number / Document type</th><th>执法人员 Officer</th>
<th>执法记录仪 Device</th><th>文件 File</th><th>SHA-256 摘要 Digest · 大小 Size</th>
<th>播放 Playback</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></section>
<section><h2>如何核验 How to verify</h2>
<p>本页面不访问网络，仅引用本证据包内的文件。原始文件已解密，与采集时逐字节一致；
<code>manifest-sha256.txt</code> 列出每个文件的 SHA-256（可用 <code>sha256sum -c</code> 核对），
<code>tagmanifest-sha256.txt</code> 覆盖清单文件本身；本包符合 BagIt 1.0（RFC 8493）。</p>
<p>This page uses no network and refers only to files inside this package. Originals are
decrypted and byte-for-byte what was archived. <code>manifest-sha256.txt</code> lists every file's
SHA-256 (check with <code>sha256sum -c</code> from the bag folder); <code>tagmanifest-sha256.txt</code>
covers the manifests; the package is a BagIt 1.0 bag (RFC 8493).</p>
<p>监管链 Custody (<code>custody/</code>, 格式 format 2): <code>events.jsonl</code>
每行一个已披露事件的 RFC 8785 规范字节；<code>links.tsv</code> 每行
<code>seq prev body_hash hash</code>，hash = SHA-256(prev ‖ body_hash)；
<code>checkpoint.json</code> 为签名声明的原始字节，<code>checkpoint.sig</code> 为 64 字节 Ed25519 签名；
签名者指纹（公钥 SHA-256）须与档案馆另行公布的指纹一致。
导出事件承诺本包 data/ 下除 custody/ 外每个文件的 SHA-256。
<code>events.jsonl</code> holds each disclosed event's RFC 8785 bytes, one a line; <code>links.tsv</code>
holds <code>seq prev body_hash hash</code> with hash = SHA-256(prev ‖ body_hash); <code>checkpoint.json</code>
is the signed statement's exact bytes and <code>checkpoint.sig</code> its raw 64-byte Ed25519 signature.
The signer's fingerprint (SHA-256 of the public key) must equal the one the bureau publishes by
another channel. The export's own event commits to the SHA-256 of every file under data/ outside
custody/. Check with <code>evidence verify-package --trusted-key FINGERPRINT</code>.</p>
</section></body></html>
"""


# --- tag files ---------------------------------------------------------------------------------


def _manifest_line(digest: str, rel: str) -> str:
    # RFC 8493 2.1.3: CR, LF and % in paths are percent-encoded.
    return f"{digest}  {rel.replace('%', '%25').replace(chr(10), '%0A').replace(chr(13), '%0D')}\n"


def _bag_info_value(value: str) -> str:
    return " ".join(str(value).split())


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1000
    return f"{n} B"


def _write_tags(
    bag: Path,
    payload: list[_PayloadFile],
    header: dict[str, Any],
    export: dict[str, Any],
    now: datetime,
    items: int,
    organization: str | None,
    sm3: bool,
    withheld: Sequence[str] = (),
) -> None:
    payload = sorted(payload, key=lambda p: p.rel)
    total = sum(p.size for p in payload)
    tags: list[tuple[str, bytes]] = [
        ("bagit.txt", f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n".encode()),
    ]
    info = []
    if organization:
        info.append(("Source-Organization", organization))
    info += [
        ("Bagging-Date", now.date().isoformat()),
        ("Payload-Oxum", f"{total}.{len(payload)}"),
        ("Bag-Size", _human_size(total)),
        ("Bag-Count", "1 of 1"),
        ("External-Identifier", header["number"]),
        (
            "External-Description",
            f"Evidence package of case {header['number']} ({header['case_key']}): {items} items",
        ),
        ("Bag-Software-Agent", SOFTWARE),
        ("Case-Number", header["number"]),
        ("Case-Key", header["case_key"]),
        ("Exported-By", export["by"]),
        ("Export-Reason", export["reason"] or "-"),
        ("Exported-At", export["at"]),
        ("Custody-Checkpoint", str(export["checkpoint"])),
        ("Custody-Event", str(export["event"])),
        ("Custody-Key", str(export["key"])),
    ]
    if withheld:
        info.append(("Withheld-Items", f"{' '.join(withheld)} (withheld: protected)"))
    tags.append(("bag-info.txt", "".join(f"{k}: {_bag_info_value(v)}\n" for k, v in info).encode()))
    tags.append(("manifest-sha256.txt", "".join(_manifest_line(p.sha256, p.rel) for p in payload).encode()))
    # How to check the package without this project, and a second verifier that needs only Node.js.
    recipe = recipes.verify_text(
        case_number=header["number"],
        case_key=header["case_key"],
        signer=str(export["key"]),
        checkpoint=int(export["checkpoint"]),
        token=any(p.rel == "data/custody/checkpoint.tsr" for p in payload),
    )
    tags.append((recipes.RECIPES_NAME, recipe.encode("utf-8")))
    tags.append((recipes.VERIFIER_NAME, recipes.verifier_source()))
    if sm3:
        tags.append(
            ("sm3-digests.txt", "".join(_manifest_line(p.sm3 or "", p.rel) for p in payload).encode())
        )
    lines = []
    for name, data in tags:
        _write_file(bag / name, data)
        hasher = Hasher()
        hasher.update(data)
        lines.append(_manifest_line(hasher.digests().sha256, name))
    _write_file(bag / "tagmanifest-sha256.txt", "".join(lines).encode("utf-8"))


# --- finishing -------------------------------------------------------------------------------


def _zip_folder(bag: Path, target: Path, top: str) -> None:
    """Zip the bag under one top-level folder; media stored, text deflated; ZIP64 on."""
    with zipfile.ZipFile(target, "x", allowZip64=True) as zf:
        for path in sorted(_walk(bag)):
            rel = path.relative_to(bag).as_posix()
            compress = (
                zipfile.ZIP_STORED
                if rel.startswith(("data/originals/", "data/proxies/"))
                else zipfile.ZIP_DEFLATED
            )
            zf.write(path, f"{top}/{rel}", compress_type=compress)
    with open(target, "rb") as f:
        os.fsync(f.fileno())


def _walk(root: Path) -> Iterable[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def _publish(source: Path, target: Path) -> None:
    """Give the finished package its name; never replace something there already."""
    if target.exists() or target.is_symlink():
        raise InvalidInput(f"{target} appeared while the package was made; it was left alone")
    os.rename(source, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size_on_disk(target: Path) -> int:
    if target.is_file():
        return target.stat().st_size
    return sum(p.stat().st_size for p in _walk(target))


def _record_failure(
    sessions: sessionmaker[Session], actor: str, case_key: str, seq: int, exc: Exception, now: datetime
) -> None:
    """The export was recorded but no package came of it: say so in the chain."""
    try:
        with sessions.begin() as session:
            custody.append(
                session,
                actor=actor,
                action=Action.EXPORT_FAILED,
                subject=case_key,
                details={"export_event": seq, "error": str(exc)[:500]},
                now=now,
            )
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
