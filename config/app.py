"""Wiring: builds engines, sessions, stores and services from the settings.

Only this package reads settings; everything else is handed plain values.
"""

from __future__ import annotations

import getpass
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from archive import encryption
from archive.context import ServiceContext
from archive.policy import ArchivePolicy
from archive.retention import Rules
from archive.store import ObjectStore
from archive.stores import StoreOptions, open_store
from archive.timestamping import TimestampAuthority
from catalog import keys, schema, selftest, timestamp, users
from catalog.attestation import attest_pre_v2
from catalog.checkpoint import Anchors, fingerprint, key_id
from catalog.db import make_engine, session_factory
from catalog.errors import EvidenceError
from catalog.models import CheckpointRow
from catalog.numbering import check_code
from catalog.timestamp import TimeTrust
from ingest.names import compile_patterns
from ingest.pipeline import Pipeline, StationSetup

from . import pinning
from .settings import Settings, _sqlite_file, parse_period

if TYPE_CHECKING:
    from verify.export import ExportResult

SIGNING, KEK = "custody-signing", "key-encryption"
WEB_SECRET_SIZE = 32  # bytes of the HMAC key that signs session cookies and media links


class KeyMismatch(EvidenceError):
    """A key file is missing or is not the key the catalog's records were made with."""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


class App:
    """Everything one command invocation needs, built lazily."""

    def __init__(self, settings: Settings, *, actor: str | None = None) -> None:
        self.settings = settings
        users.set_cost(settings.web.password_cost_log2)
        self.actor = actor or default_actor()
        self._checked = False

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    # --- catalog ----------------------------------------------------------
    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def readonly_engine(self) -> Engine:
        return make_engine(self.settings.database_url, readonly=True)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def reader_sessions(self) -> sessionmaker[Session]:
        return session_factory(self.readonly_engine)

    def require_catalog(self) -> App:
        """Refuse to go on unless the catalog is at the newest schema."""
        if not self._checked:
            schema.require_current(self.engine)
            self._checked = True
        return self

    # --- storage ----------------------------------------------------------
    @cached_property
    def store(self) -> ObjectStore:
        s = self.settings.storage
        return open_store(
            self.settings.storage_url,
            StoreOptions(
                lock_mode=s.lock_mode,
                access_key=s.access_key,
                secret_key=s.secret_key,
                part_size=s.part_size_mib << 20,
                read_back=s.read_back,
            ),
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms these settings use (each is self-tested before its first use)."""
        s = self.settings
        return selftest.needed(
            encryption_mode=s.encryption.mode, algorithm=s.encryption.algorithm, sm3=s.digests.sm3
        )

    @cached_property
    def policy(self) -> ArchivePolicy:
        s = self.settings
        selftest.require(*self.algorithms)  # refuse before anything is stored with a missing one
        return ArchivePolicy(
            zone=s.zone,
            routine=parse_period(s.retention.routine),
            sm3=s.digests.sm3,
            encryption_mode=s.encryption.mode,
            algorithm=s.encryption.algorithm,
        )

    @cached_property
    def services(self) -> ServiceContext:
        """What every service takes; the key-encryption key is read only when first needed."""
        return ServiceContext(
            engine=self.engine,
            sessions=self.sessions,
            store=self.store,
            formats=self.settings.formats,
            policy=self.policy,
            actor=self.actor,
            load_kek=lambda: self.kek,
            load_keks=lambda: self.keks,
            wrap_lock=timedelta(days=self.settings.encryption.wrap_lock_days),
            clock=self.now,
        )

    def station_setup(self, station: str) -> StationSetup:
        s, ing = self.settings, self.settings.ingest
        configured = s.station(station)
        check_code(station, "station id")
        return StationSetup(
            station=station,
            unit=(configured.unit if configured and configured.unit else s.unit),
            zone=s.zone,
            patterns=compile_patterns(ing.filename_patterns),
            archived_folder=ing.archived_folder,
            quarantine_folder=ing.quarantine_folder,
            after_archive=ing.after_archive,
            stable_seconds=ing.stable_seconds,
            clock_tolerance_seconds=ing.clock_tolerance_seconds,
            workers=ing.workers,
            transcode_workers=ing.transcode_workers,
            retry_seconds=ing.retry_seconds,
            archived_keep_days=ing.archived_keep_days,
            protected=tuple(s.protected_paths),
            derivatives=ing.derivatives,
        )

    def pipeline(self, station: str, fault_hook=None) -> Pipeline:
        return Pipeline(self.services, self.station_setup(station), fault_hook=fault_hook)

    @cached_property
    def rules(self) -> Rules:
        r = self.settings.retention
        return Rules(
            routine=parse_period(r.routine),
            case_default=parse_period(r.case_default),
            case_types={k: parse_period(v) for k, v in r.case_types.items()},
            important=parse_period(r.important),
            grace=timedelta(days=r.grace_days),
        )

    # --- trust ------------------------------------------------------------
    @property
    def settings_file(self) -> Path | None:
        path = Path(self.settings.source)
        return path if self.settings.source not in ("defaults", "the defaults") and path.is_file() else None

    def pinned(self) -> list[str]:
        """The fingerprints this installation trusts (settings, or the data folder's pin file
        when no settings file is in use)."""
        found = list(self.settings.custody.trusted_keys)
        if self.settings_file is None:
            found += pinning.pinned_in_file(self.settings.trusted_keys_path)
        return found

    def anchors(self, extra: tuple[str, ...] | list[str] = ()) -> Anchors:
        """Trust: the pinned fingerprints plus ``--trusted-key`` values. Never the private key."""
        return Anchors.parse([*self.pinned(), *extra])

    # --- trusted time (RFC 3161) -------------------------------------------
    @cached_property
    def tsa(self) -> TimestampAuthority | None:
        """Where checkpoints ask for time-stamp tokens; None when no TSA is configured."""
        c = self.settings.custody
        return TimestampAuthority(c.tsa_url, c.tsa_timeout_seconds) if c.tsa_url else None

    def time_trust(self, ca_files: tuple[Path, ...] = ()) -> TimeTrust | None:
        """What tokens are checked against: ``ca_files`` (given by whoever checks) or else the
        configured ``[custody] tsa_ca_file``; None when there is neither."""
        c = self.settings.custody
        files = list(ca_files) or ([self.settings.tsa_ca_path] if self.settings.tsa_ca_path else [])
        if not files:
            return None
        roots: list[x509.Certificate] = []
        for file in files:
            try:
                roots += timestamp.load_roots(file.read_bytes(), str(file))
            except OSError as exc:
                raise EvidenceError(
                    f"the TSA's CA certificate {file} cannot be read: {exc.strerror}",
                    hint="[custody] tsa_ca_file, or --tsa-ca: the PEM certificate the TSA publishes",
                ) from exc
        return TimeTrust(tuple(roots), c.tsa_policy or None, timedelta(hours=c.tsa_late_hours))

    # --- keys -------------------------------------------------------------
    def _recorded(self, purpose: str) -> str | None:
        with self.sessions() as session:
            return keys.recorded_key_id(session, purpose)

    def _require_key_file(self, purpose: str, path: Path) -> None:
        recorded = self._recorded(purpose)
        if not path.exists() and recorded is not None:
            raise KeyMismatch(
                f"key file {path} is missing; this catalog's records were made with key {recorded}",
                hint="restore it from its backup; a new key would not read or continue the old records",
            )

    def _check_key_id(self, purpose: str, actual: str, path: Path) -> None:
        recorded = self._recorded(purpose)
        if recorded is not None and recorded != actual:
            raise KeyMismatch(
                f"{path} holds key {actual}, but this catalog's records were made with key {recorded}",
                hint="restore the right key file from its backup",
            )

    @cached_property
    def signing_key(self) -> Ed25519PrivateKey:
        path = self.settings.signing_key_path
        self._require_key_file(SIGNING, path)
        selftest.require(selftest.ED25519)
        key = keys.load_signing_key(path)
        self._check_key_id(SIGNING, key_id(key.public_key()), path)
        return key

    def rotate_signing_key(self, *, lost: bool = False) -> dict[str, object]:
        """``evidence audit rotate-key``: a new key (kept beside the old one as ``….next.pem``
        until the catalog has switched), the hand-over (``archive.keyrotation.rotate``), then
        the new key file replaces the old one and its fingerprint is pinned. Each step can be
        interrupted: running it again picks up the kept new key and finishes."""
        from archive import keyrotation

        path = self.settings.signing_key_path
        pending = path.with_name(f"{path.stem}.next{path.suffix}")
        if lost:
            return self._replace_lost_key(path, pending)
        self._require_key_file(SIGNING, path)
        selftest.require(selftest.ED25519)
        old_key = keys.load_signing_key(path)
        new_key, _ = keys.ensure_signing_key(pending)
        old = fingerprint(old_key.public_key())
        if self._recorded(SIGNING) == key_id(new_key.public_key()):  # switched by a run that died
            with self.sessions() as session:
                change = keyrotation.change_from(session, old)
            if change is None:
                raise EvidenceError(
                    f"the catalog records {pending} as the signing key, but no hand-over from {path}",
                    hint=f"restore the signing key files from their backup ({path}, {pending})",
                )
            keyrotation.publish_statements(self.sessions, self.store, now=self.now())
        else:
            self._check_key_id(SIGNING, key_id(old_key.public_key()), path)
            change = keyrotation.rotate(self.services, old_key, new_key, purpose=SIGNING)
        keys.replace_private_file(pending, path)
        self.__dict__.pop("signing_key", None)
        pinned_at, _ = pinning.pin(self.settings_file, self.settings.trusted_keys_path, change.new)
        return {
            "old": change.old,
            "new": change.new,
            "n": change.n,
            "statement": change.name,
            "statement_sha256": change.digest(),
            "signing_key": str(path),
            "pinned_in": str(pinned_at),
        }

    def _replace_lost_key(self, path: Path, pending: Path) -> dict[str, object]:
        """``rotate-key --lost``: the key file is gone, so nothing can sign a hand-over. A new
        key signs from the next checkpoint on and is pinned here; everyone else must pin it
        again, told by another channel than the archive."""
        from archive import keyrotation

        if path.exists():
            raise EvidenceError(
                f"the signing key {path} is there: it is not lost",
                hint="run `evidence audit rotate-key` without --lost: the old key signs the hand-over",
            )
        with self.sessions() as session:
            last = session.execute(
                select(CheckpointRow.key)
                .where(CheckpointRow.key.is_not(None))
                .order_by(CheckpointRow.n.desc())
            ).scalar()
        new_key, _ = keys.ensure_signing_key(pending)
        keyrotation.replace_lost(self.services, new_key, lost=last, purpose=SIGNING)
        keys.replace_private_file(pending, path)
        self.__dict__.pop("signing_key", None)
        new = fingerprint(new_key.public_key())
        pinned_at, _ = pinning.pin(self.settings_file, self.settings.trusted_keys_path, new)
        return {
            "old": last,
            "new": new,
            "lost": True,
            "signing_key": str(path),
            "pinned_in": str(pinned_at),
        }

    def kek_paths(self) -> list[Path]:
        """Every KEK file there is: ``key_file`` and the files of ``key_folder``."""
        found = [self.settings.encryption_key_path] if self.settings.encryption_key_path.exists() else []
        folder = self.settings.encryption_key_folder
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.key") if p != self.settings.encryption_key_path)
        return found

    @cached_property
    def keks(self) -> tuple[dict[str, bytes], str]:
        """Every KEK found, by id, and the current one: the one the catalog records (a
        rotation records its new KEK), else ``key_file``'s."""
        loaded = {}
        for path in self.kek_paths():
            kek = encryption.load_kek(path)  # owner and mode checked
            loaded[encryption.kek_id(kek)] = kek
        recorded = self._recorded(KEK)
        path = self.settings.encryption_key_path
        if recorded is None:
            self._require_key_file(KEK, path)
            current = encryption.kek_id(encryption.load_kek(path))
        elif recorded not in loaded:
            if path.exists() and len(loaded) == 1:
                self._check_key_id(KEK, next(iter(loaded)), path)  # raises, naming both keys
            raise KeyMismatch(
                f"the current key-encryption key {recorded} is in none of the key files "
                f"({path}, {self.settings.encryption_key_folder}/*.key)",
                hint="restore it from its backup; a new key would not read the records it protects",
            )
        else:
            current = recorded
        return loaded, current

    def new_kek(self) -> bytes:
        """A new KEK in the key folder as ``{KEK id}.key`` (mode 0600), never replacing a file."""
        kek = encryption.generate_kek()
        path = self.settings.encryption_key_folder / f"{encryption.kek_id(kek)}.key"
        if not keys.write_new_private_file(path, kek.hex().encode("ascii") + b"\n"):
            raise KeyMismatch(f"key file {path} exists already", hint="run the command again")
        self.reload_keys()
        return kek

    def reload_keys(self) -> None:
        """Forget the loaded KEKs: the next use reads the key files again."""
        self.__dict__.pop("keks", None)

    @property
    def kek(self) -> bytes:
        """The current KEK (it wraps new data keys)."""
        keks, current = self.keks
        return keks[current]

    @property
    def web_secret_path(self) -> Path:
        return self.settings.data_path / "keys" / "web-session.key"

    def web_context(self):
        from verify.web import WebContext

        path = self.web_secret_path
        if not path.exists():
            keys.write_new_private_file(path, secrets.token_bytes(WEB_SECRET_SIZE))
        secret = keys.read_key_file(path, "web session secret")
        if len(secret) != WEB_SECRET_SIZE:  # a short secret (empty: none) makes cookies forgeable
            raise keys.KeyFileError(
                f"web session secret {path} holds {len(secret)} bytes, not {WEB_SECRET_SIZE}",
                hint=f"delete {path} and start again: a new secret is made (everyone signs in again)",
            )
        cov = self.settings.coverage
        return WebContext(
            services=self.services,
            zone=self.settings.zone,
            secret=secret,
            language=self.settings.language,
            on_site_types=set(cov.on_site_types),
            coverage_window=timedelta(minutes=cov.window_minutes),
            export=self.export_for_web,
            exports=self.settings.data_path / "exports",
            anchors=self.anchors(),
            readers=self.reader_sessions,
            session_idle=timedelta(minutes=self.settings.web.session_idle_minutes),
            session_lifetime=timedelta(hours=self.settings.web.session_max_hours),
            trusted_proxies=tuple(self.settings.web.trusted_proxies),
            link_seconds=self.settings.web.media_link_seconds,
            pdf_font=Path(self.settings.web.pdf_font) if self.settings.web.pdf_font else None,
            public_url=self.settings.public_url,
        )

    def export_for_web(
        self, case_key: str, folder: Path, *, reason: str, actor: str, include_protected: bool
    ) -> ExportResult:
        """The web server holds no signing key: its packages stay pending until the next
        timer checkpoint covers their export event (``verify.export.finish_pending``)."""
        from verify.export import export_case

        return export_case(
            self.services.acting_as(actor),
            case_key,
            folder,
            signing_key=None,
            reason=reason,
            with_proxies=True,
            zip_it=True,
            include_protected=include_protected,
        )

    # --- init -------------------------------------------------------------
    def init(self) -> dict[str, object]:
        """Create or upgrade everything the settings name; safe to run again.

        Keys are created only for a catalog that has never recorded one: a
        key file that disappeared later is an error, never silently replaced.
        """
        selftest.require(*self.algorithms)  # before any key or record is made with them
        self.settings.data_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        before, after = schema.upgrade(self.engine)
        self._checked = True
        self.store.ensure_ready()
        self._tighten()
        signing_created = self._ensure_key(
            SIGNING,
            self.settings.signing_key_path,
            create=keys.ensure_signing_key,
            ident=lambda p: key_id(keys.load_signing_key(p).public_key()),
        )
        signing_fingerprint = fingerprint(self.signing_key.public_key())
        pinned_at, pinned_now = pinning.pin(
            self.settings_file, self.settings.trusted_keys_path, signing_fingerprint
        )
        with self.sessions.begin() as session:
            attested = attest_pre_v2(session, actor=self.actor, now=self.now())
        recorded_kek = self._recorded(KEK)
        kek_created = False
        rotated = [p for p in self.kek_paths() if p != self.settings.encryption_key_path]
        if recorded_kek is None and rotated and not self.settings.encryption_key_path.exists():
            # A catalog rebuilt after a rotation whose old key file was destroyed: the newest
            # KEK of the key folder is current again, never a new key beside it.
            newest = max(rotated, key=lambda p: p.stat().st_mtime)
            with self.sessions.begin() as session:
                keys.record_key_id(session, KEK, encryption.kek_id(encryption.load_kek(newest)), self.now())
        elif recorded_kek is None or recorded_kek == self._key_file_kek_id():
            kek_created = self._ensure_key(
                KEK,
                self.settings.encryption_key_path,
                create=encryption.create_kek,
                ident=lambda p: encryption.kek_id(encryption.load_kek(p)),
            )
        # else: a rotation made a newer KEK current; `kek` below checks it is there.
        return {
            "catalog": self.engine.url.render_as_string(hide_password=True),
            "schema_before": before,
            "schema": after,
            "storage": self.store.url,
            "signing_key": str(self.settings.signing_key_path),
            "signing_key_created": signing_created,
            "key_id": key_id(self.signing_key.public_key()),
            "fingerprint": signing_fingerprint,
            "pinned_in": str(pinned_at),
            "pinned_now": pinned_now,
            "attested": attested,
            "kek": str(self.settings.encryption_key_path),
            "kek_created": kek_created,
            "kek_id": encryption.kek_id(self.kek),
        }

    def _key_file_kek_id(self) -> str | None:
        path = self.settings.encryption_key_path
        return encryption.kek_id(encryption.load_kek(path)) if path.exists() else None

    def _tighten(self) -> None:
        """Data folder, catalog and local store readable by the service account only: the
        catalog holds password hashes and protected metadata. Existing ones are tightened too."""
        paths = [self.settings.data_path]
        catalog = _sqlite_file(self.settings.database_url)
        if catalog is not None:
            paths += [catalog, *(catalog.with_name(catalog.name + s) for s in ("-wal", "-shm", "-journal"))]
        root = getattr(self.store, "root", None)  # a local store's folder (S3 has none here)
        if isinstance(root, Path):
            paths.append(root)
        for path in paths:
            if path.exists():
                path.chmod(path.stat().st_mode & 0o700)

    def _ensure_key(
        self, purpose: str, path: Path, *, create: Callable[[Path], object], ident: Callable[[Path], str]
    ) -> bool:
        self._require_key_file(purpose, path)
        created = not path.exists()
        if created:
            create(path)
        actual = ident(path)
        self._check_key_id(purpose, actual, path)
        with self.sessions.begin() as session:
            recorded = keys.record_key_id(session, purpose, actual, self.now())
        if recorded != actual:  # another `init` recorded its own key at the same moment
            self._check_key_id(purpose, actual, path)
        return created

    def close(self) -> None:
        for name in ("engine", "readonly_engine"):
            if name in self.__dict__:
                self.__dict__[name].dispose()
