"""The settings model and its loading: a TOML file, then environment overrides.

Where the file comes from: ``--config PATH``, else ``EVIDENCE_CONFIG``, else
``./evidence.toml`` when it exists, else no file (all defaults). Every key of
the file must be known (a typo is an error naming the key and the file);
every value is checked at start, so a bad setting never surfaces halfway
through a night's ingest. ``config/evidence.example.toml`` documents them all.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog.errors import EvidenceError, InvalidInput
from catalog.numbering import (
    DEFAULT_ARCHIVE_FORMAT,
    DEFAULT_CASE_KEY_FORMAT,
    DEFAULT_ITEM_FORMAT,
    NumberingFormats,
    check_code,
)


class SettingsError(EvidenceError):
    """A setting is unknown, of the wrong type, or unusable."""


MASK = "********"
PERIOD = re.compile(r"^\s*(permanent|(\d+)\s*(day|days|month|months|year|years))\s*$")
# Longer periods overflow date arithmetic; "permanent" is the way to keep longer.
PERIOD_LIMITS = {"days": 36600, "months": 1200, "years": 100}
# S3 bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, letter or digit at the ends.
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PATTERN_GROUPS = {"device", "officer", "start", "seq", "marker", "ext"}

DEFAULT_FILENAME_PATTERNS = [
    # 1111111@201506250850560000.mp4 (serial, start time, 4-5 digit sequence)
    r"^(?P<device>[A-Za-z0-9]{3,16})@(?P<start>\d{14})(?P<seq>\d{4,5})"
    r"(?:_(?P<marker>IMP|SOS))?\.(?P<ext>[A-Za-z0-9]+)$",
    # TA00716_JX0227_20170623093621.MOV, optional _SEQ and _IMP/_SOS marker
    r"^(?P<device>[A-Za-z0-9]{3,16})_(?P<officer>[A-Za-z0-9]{3,16})_(?P<start>\d{14})"
    r"(?:_(?P<seq>\d{1,5}))?(?:_(?P<marker>IMP|SOS))?\.(?P<ext>[A-Za-z0-9]+)$",
]

DEFAULT_DOCUMENT_TYPES = [
    "立案审批表",
    "立案登记表",
    "现场检查（勘验）笔录",
    "询问笔录",
    "调查笔录",
    "责令改正通知书",
    "证据保全通知书",
    "行政处罚事先告知书",
    "陈述申辩听证告知书",
    "听证笔录",
    "集体讨论案件会议纪要",
    "行政处罚决定书",
    "送达回证",
    "结案报告",
    "结案登记表",
    "其他",
]


def parse_period(text: str) -> tuple[int, str] | None:
    """'6 months' -> (6, 'months'); 'permanent' -> None. Raises InvalidInput otherwise."""
    match = PERIOD.match(text or "")
    if not match:
        raise InvalidInput(
            f"{text!r} is not a retention period",
            hint="write 'permanent' or a count of days, months or years, e.g. '6 months'",
        )
    if match.group(1) == "permanent":
        return None
    unit = match.group(3)
    unit = unit if unit.endswith("s") else unit + "s"
    count = int(match.group(2))
    if count > PERIOD_LIMITS[unit]:
        raise InvalidInput(
            f"{text!r} is longer than {PERIOD_LIMITS[unit]} {unit}",
            hint="write 'permanent' to keep records with no end",
        )
    return count, unit


# --- the model -----------------------------------------------------------


@dataclass(frozen=True)
class CatalogSettings:
    database_url: str = ""  # empty: SQLite file catalog.sqlite3 in the data folder
    database_url_file: str = ""  # or read it from this file (see config.secrets)


@dataclass(frozen=True)
class StorageSettings:
    url: str = ""  # empty: file:// the data folder's store/
    access_key: str = ""
    secret_key: str = ""
    access_key_file: str = ""  # or read them from these files (see config.secrets)
    secret_key_file: str = ""
    # Which credential this machine holds (config/policies/ROLE.json): `evidence doctor`
    # checks what that role can and must see.
    role: Literal["station", "curator", "reader", "worker"] = "curator"
    lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    part_size_mib: int = 16
    read_back: bool = False  # re-read every original after a put (needs a reading credential)


@dataclass(frozen=True)
class NumberingSettings:
    archive_number: str = DEFAULT_ARCHIVE_FORMAT
    item_number: str = DEFAULT_ITEM_FORMAT
    case_key: str = DEFAULT_CASE_KEY_FORMAT


@dataclass(frozen=True)
class CustodySettings:
    signing_key: str = "keys/custody-ed25519.pem"  # relative to the data folder
    # Trusted time (RFC 3161): empty tsa_url means checkpoints carry the bureau's word only.
    tsa_url: str = ""
    tsa_ca_file: str = ""  # the TSA's CA certificate (PEM), relative to the data folder
    tsa_policy: str = ""  # an OID the tokens must carry, e.g. "1.2.3.4.1"; empty: any
    tsa_late_hours: float = 24.0
    tsa_timeout_seconds: float = 10.0
    # Full SHA-256 fingerprints of the keys whose checkpoints this installation trusts.
    trusted_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetentionSettings:
    routine: str = "6 months"
    case_default: str = "permanent"
    important: str = "permanent"
    grace_days: int = 7
    max_purges_per_run: int = 200
    case_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DigestSettings:
    sm3: bool = False  # also compute SM3 (GB/T 32905) beside SHA-256


@dataclass(frozen=True)
class EncryptionSettings:
    # "protected": encrypt records flagged protected; "all": every record; "none".
    mode: Literal["none", "protected", "all"] = "protected"
    algorithm: Literal["AES-256-GCM", "SM4-GCM"] = "AES-256-GCM"
    key_file: str = "keys/kek.key"  # key-encryption key, relative to the data folder
    # Further KEKs, one file each ({KEK id}.key): `evidence keys rotate-kek` puts new ones
    # here. Every KEK found (key_file and this folder) is loaded; the catalog names the
    # current one, which wraps new data keys.
    key_folder: str = "keys/kek"
    # How long each key wrap object is locked: a wrap superseded by a rotation can be
    # deleted once its lock ends (`evidence keys delete-superseded`).
    wrap_lock_days: int = 365


@dataclass(frozen=True)
class IngestSettings:
    stable_seconds: float = 5.0
    rescan_seconds: float = 300.0
    archived_folder: str = ".archived"
    quarantine_folder: str = ".quarantine"
    # The station copy once archived: "move" to archived_folder (pruned after
    # archived_keep_days), "delete", or "keep" in place (then never rescanned).
    after_archive: Literal["move", "delete", "keep"] = "move"
    archived_keep_days: int = 30
    clock_tolerance_seconds: float = 300.0
    workers: int = 2  # files hashed and stored at once
    transcode_workers: int = 1  # transcodes at once (remuxes and thumbnails are not limited)
    retry_seconds: float = 60.0  # first retry of a failed file; doubles up to an hour
    stale_after_hours: float = 24.0  # warn when the last successful ingest is older
    device_absent_hours: float = 72.0  # devices not docked for longer are reported
    metrics_port: int = 0  # Prometheus metrics on ADDRESS:PORT; 0 is off
    metrics_address: str = "127.0.0.1"  # where metrics listen ("0.0.0.0": every interface)
    # Transcoded proxies: "local" (made by the station) or "queue" (left to `evidence derive
    # work` on any machine); posters, sheets and waveforms are always made by the station.
    derivatives: Literal["local", "queue"] = "local"
    filename_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_FILENAME_PATTERNS))


@dataclass(frozen=True)
class StationSettings:
    id: str
    name: str = ""
    unit: str = ""  # empty: the bureau's unit
    folders: list[str] = field(default_factory=list)
    polling: bool = False  # polling observer, for network mounts


@dataclass(frozen=True)
class DocumentSettings:
    types: list[str] = field(default_factory=lambda: list(DEFAULT_DOCUMENT_TYPES))


@dataclass(frozen=True)
class CoverageSettings:
    # Written records of on-site steps, which need a recording of the same officer.
    on_site_types: list[str] = field(
        default_factory=lambda: [
            "现场检查（勘验）笔录",
            "询问笔录",
            "调查笔录",
            "证据保全通知书",
            "责令改正通知书",
            "送达回证",
        ]
    )
    window_minutes: float = 60.0


@dataclass(frozen=True)
class WebSettings:
    session_idle_minutes: float = 30.0
    session_max_hours: float = 12.0
    password_cost_log2: int = 17
    # Addresses (or networks, e.g. "10.0.0.0/24") of reverse proxies whose X-Forwarded-For is
    # believed; from anyone else it is ignored, so a client cannot pick its own source address.
    trusted_proxies: list[str] = field(default_factory=list)
    # How long a media link handed to a page lives. The page renews its links as they expire,
    # so a review plays on; a link copied out of the page stops working after this long.
    media_link_seconds: float = 300.0
    # The TrueType font (.ttf/.ttc) with CJK glyphs the case file PDF embeds; empty: Debian's
    # fonts-wqy-zenhei. Not an OpenType/CFF font such as Noto CJK: reportlab cannot embed those.
    pdf_font: str = ""
    host: str = "127.0.0.1"  # where `evidence serve` listens (0.0.0.0: every interface)
    port: int = 8080
    # Processes serving the pages: each renders pages on one core (Python runs one thread of
    # page code at a time per process), so a case page of hundreds of items does not queue the
    # other auditors' pages behind it. 1: everything in one process.
    workers: int = 2
    # The address users reach the pages at, e.g. "https://evidence.example.org/" behind a
    # TLS-terminating proxy; an https URL makes session cookies Secure. Empty: http://host:port/.
    public_url: str = ""


@dataclass(frozen=True)
class DoctorSettings:
    """What `evidence doctor` calls late, low or off."""

    min_free_gib: float = 10.0  # free space of the data folder and station folders
    ingest_hours: float = 24.0  # a station's last successful ingest
    fixity_days: float = 8.0  # the last fixity sweep
    checkpoint_days: float = 1.0  # the last signed checkpoint
    retention_days: float = 2.0  # the last retention run
    max_clock_skew_seconds: float = 60.0  # this machine's clock against the database server's


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./evidence-data"
    timezone: str = "Asia/Shanghai"
    unit: str = "UNIT"
    # The bureau's name as printed on reports (e.g. 开封市城市管理局); empty: the unit code.
    unit_name: str = ""
    language: Literal["zh", "en"] = "zh"
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    numbering: NumberingSettings = field(default_factory=NumberingSettings)
    custody: CustodySettings = field(default_factory=CustodySettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    digests: DigestSettings = field(default_factory=DigestSettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    coverage: CoverageSettings = field(default_factory=CoverageSettings)
    web: WebSettings = field(default_factory=WebSettings)
    doctor: DoctorSettings = field(default_factory=DoctorSettings)
    stations: list[StationSettings] = field(default_factory=list)
    source: str = field(default="defaults", compare=False)  # where the file came from

    # derived values ------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def _in_data(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.data_path / path

    @property
    def database_url(self) -> str:
        return self.catalog.database_url or f"sqlite:///{self.data_path / 'catalog.sqlite3'}"

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"file://{self.data_path / 'store'}"

    @property
    def signing_key_path(self) -> Path:
        return self._in_data(self.custody.signing_key)

    @property
    def tsa_ca_path(self) -> Path | None:
        return self._in_data(self.custody.tsa_ca_file) if self.custody.tsa_ca_file else None

    @property
    def trusted_keys_path(self) -> Path:
        """Where ``evidence init`` pins the key when no settings file is in use."""
        return self.data_path / "keys" / "trusted-keys.txt"

    @property
    def encryption_key_path(self) -> Path:
        return self._in_data(self.encryption.key_file)

    @property
    def encryption_key_folder(self) -> Path:
        return self._in_data(self.encryption.key_folder)

    @property
    def public_url(self) -> str:
        """Where users reach the pages (``[web] public_url``, else the listening address)."""
        if self.web.public_url:
            return self.web.public_url.rstrip("/") + "/"
        host = self.web.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.web.port}/"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def formats(self) -> NumberingFormats:
        return NumberingFormats(
            self.numbering.archive_number, self.numbering.item_number, self.numbering.case_key
        )

    def station(self, station_id: str) -> StationSettings | None:
        return next((s for s in self.stations if s.id == station_id), None)

    @property
    def protected_paths(self) -> list[tuple[str, Path]]:
        """What a station folder must neither contain nor lie inside, as (what, path):
        whatever a station folder holds may be moved to ``.archived`` (and pruned) or to
        ``.quarantine``, so the archive's own files must never be in one."""
        found = [
            ("data folder", self.data_path),
            ("custody signing key's folder", self.signing_key_path.parent),
            ("key-encryption key's folder", self.encryption_key_path.parent),
            ("key-encryption keys' folder", self.encryption_key_folder),
        ]
        if urlsplit(self.storage_url).scheme == "file":
            found.append(("store", Path(urlsplit(self.storage_url).path)))
        database = _sqlite_file(self.database_url)
        if database is not None:
            found.append(("catalog database", database))
        return found


# --- loading -------------------------------------------------------------

ENVIRONMENT = {
    "EVIDENCE_DATA_DIR": ("data_dir",),
    "EVIDENCE_DATABASE_URL": ("catalog", "database_url"),
    "EVIDENCE_STORAGE_URL": ("storage", "url"),
    "EVIDENCE_S3_ACCESS_KEY": ("storage", "access_key"),
    "EVIDENCE_S3_SECRET_KEY": ("storage", "secret_key"),
    "EVIDENCE_TIMEZONE": ("timezone",),
    "EVIDENCE_UNIT": ("unit",),
    "EVIDENCE_LANGUAGE": ("language",),
    "EVIDENCE_WEB_HOST": ("web", "host"),
    "EVIDENCE_WEB_PUBLIC_URL": ("web", "public_url"),
    "EVIDENCE_STORAGE_ROLE": ("storage", "role"),
    # secrets given as files (config.secrets)
    "EVIDENCE_DATABASE_URL_FILE": ("catalog", "database_url_file"),
    "EVIDENCE_S3_ACCESS_KEY_FILE": ("storage", "access_key_file"),
    "EVIDENCE_S3_SECRET_KEY_FILE": ("storage", "secret_key_file"),
}
# Read elsewhere, not settings: which file to load, and test-suite switches.
ENVIRONMENT_OTHER = {"EVIDENCE_CONFIG", "EVIDENCE_SERVE_SPEC"}
# systemd's LoadCredential= hands secrets over in this folder (config.secrets).
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
ENVIRONMENT_IGNORED_PREFIX = "EVIDENCE_TEST_"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return f"a {'list' if origin is list else 'table'}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, where: str, source: str) -> Any:
    def wrong() -> SettingsError:
        return SettingsError(f"setting {where} in {source} must be {_type_name(tp)}, not {value!r}")

    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise wrong()
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise wrong()
        return [_coerce(item_tp, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        _, item_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise wrong()
        return {str(k): _coerce(item_tp, v, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong()
        return _build(tp, value, f"{where}.", source)
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong()
        if not math.isfinite(value):  # TOML allows nan and inf; no duration or count is either
            raise SettingsError(f"setting {where} in {source} must be a finite number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    raise TypeError(f"unsupported settings type {tp!r}")  # a programming error


def _build(cls: type, data: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise SettingsError(
                f"unknown setting {prefix}{key} in {source}",
                hint=f"known keys here: {', '.join(sorted(known))}",
            )
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}", source)
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise SettingsError(f"setting {prefix.rstrip('.')} in {source} lacks {', '.join(missing)}")
    return cls(**kwargs)


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def config_file(explicit: str | os.PathLike[str] | None, environ: typing.Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("EVIDENCE_CONFIG"):
        return Path(environ["EVIDENCE_CONFIG"])
    default = Path("evidence.toml")
    return default if default.is_file() else None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: typing.Mapping[str, str] | None = None
) -> tuple[Settings, list[str]]:
    """Load and check the settings. Returns (settings, warnings)."""
    environ = os.environ if environ is None else environ
    file = config_file(path, environ)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(
                f"settings file {file} does not exist",
                hint="pass --config with an existing file, or unset EVIDENCE_CONFIG",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"settings file {file} cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {file} is not valid TOML: {exc}") from exc
    source = str(file) if file else "the defaults"
    settings = _build(Settings, data, "", source)

    warnings: list[str] = []
    overrides: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith("EVIDENCE_") or name.startswith(ENVIRONMENT_IGNORED_PREFIX):
            continue
        if name in ENVIRONMENT:
            _set_path(overrides, ENVIRONMENT[name], value)
        elif name not in ENVIRONMENT_OTHER:
            warnings.append(
                f"unknown environment variable {name} is ignored "
                f"(known: {', '.join(sorted(ENVIRONMENT) + sorted(ENVIRONMENT_OTHER))})"
            )
    from .secrets import resolve_secrets

    merged = resolve_secrets(data, overrides, environ, source)
    if overrides or merged is not data:
        where = f"{source} and the environment" if overrides else source
        settings = _build(Settings, merged, "", where)
    settings = dataclasses.replace(settings, source=str(file) if file else "defaults")
    validate(settings, f"{source}{' and the environment' if overrides else ''}")
    return settings, warnings


def check_station_folders(settings: Settings, folders: typing.Iterable[Path]) -> None:
    """Refuse station folders that contain, or lie inside, the data folder, the store or the
    keys (``SettingsError`` naming both); the `ingest` commands call it on the folders given."""
    from ingest.station_files import StationFolderRefused, check_station_folder

    for folder in folders:
        try:
            check_station_folder(Path(folder), settings.protected_paths)
        except StationFolderRefused as exc:
            raise SettingsError(exc.message, hint=exc.hint) from None


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by _check_database_url
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def validate(s: Settings, source: str) -> None:
    """Check values that types alone cannot; each error names the key."""

    def fail(key: str, problem: str, hint: str | None = None) -> typing.NoReturn:
        raise SettingsError(f"setting {key} in {source} {problem}", hint=hint)

    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail("timezone", f"names no known time zone: {s.timezone!r}", "e.g. 'Asia/Shanghai'")
    for key, code in [("unit", s.unit)] + [
        (f"stations[{i}].unit", st.unit) for i, st in enumerate(s.stations) if st.unit
    ]:
        try:
            check_code(code, "unit code")
        except InvalidInput as exc:
            fail(key, exc.message, exc.hint)
    try:
        _ = s.formats  # building them checks every template
    except InvalidInput as exc:
        fail("numbering", exc.message, exc.hint)
    _check_database_url(s.database_url, fail)
    _check_storage_url(s.storage_url, fail)
    if not 5 <= s.storage.part_size_mib <= 5120:
        fail("storage.part_size_mib", "must be between 5 and 5120 (S3's part size limits)")
    r = s.retention
    for key, value in [
        ("retention.routine", r.routine),
        ("retention.case_default", r.case_default),
        ("retention.important", r.important),
    ] + [(f"retention.case_types.{k}", v) for k, v in r.case_types.items()]:
        try:
            parse_period(value)
        except InvalidInput as exc:
            fail(key, exc.message, exc.hint)
    routine = parse_period(r.routine)
    if routine and _months(routine) < 6:
        fail(
            "retention.routine",
            "is shorter than six months",
            "enforcement recordings must be kept at least six months",
        )
    if r.max_purges_per_run < 1:
        fail("retention.max_purges_per_run", "must be at least 1")
    if s.encryption.wrap_lock_days < 1:
        fail("encryption.wrap_lock_days", "must be at least 1")
    ing = s.ingest
    # Bounds keep every value inside what timers and date arithmetic can hold.
    day, year = 86400.0, 366 * 86400.0
    bounds: list[tuple[str, float, float, float]] = [
        ("ingest.stable_seconds", ing.stable_seconds, 0.0, day),
        ("ingest.rescan_seconds", ing.rescan_seconds, 0.001, day),
        ("ingest.archived_keep_days", ing.archived_keep_days, 0, 36600),
        ("ingest.clock_tolerance_seconds", ing.clock_tolerance_seconds, 0.0, year),
        ("ingest.retry_seconds", ing.retry_seconds, 0.001, day),
        ("ingest.stale_after_hours", ing.stale_after_hours, 0.001, 24 * 366.0),
        ("ingest.device_absent_hours", ing.device_absent_hours, 0.001, 24 * 3660.0),
        ("ingest.workers", ing.workers, 1, 256),
        ("ingest.transcode_workers", ing.transcode_workers, 1, 256),
        ("ingest.metrics_port", ing.metrics_port, 0, 65535),
        ("retention.grace_days", r.grace_days, 0, 36600),
        ("coverage.window_minutes", s.coverage.window_minutes, 0.001, 60 * 24 * 31.0),
        ("custody.tsa_late_hours", s.custody.tsa_late_hours, 0.0, 24 * 366.0),
        ("custody.tsa_timeout_seconds", s.custody.tsa_timeout_seconds, 0.1, 600.0),
        # An idle limit past the absolute one, or a lifetime of years, is a mistake, not a choice.
        ("web.session_idle_minutes", s.web.session_idle_minutes, 1.0, 60 * 24.0),
        ("web.session_max_hours", s.web.session_max_hours, 0.1, 24 * 31.0),
        # Below 2^14 scrypt is cheap to guess; past 2^20 one login takes seconds and 1 GiB.
        ("web.password_cost_log2", s.web.password_cost_log2, 14, 20),
        ("web.workers", s.web.workers, 1, 64),
        # A media link copied out of a page must stop working within minutes (15 at most).
        ("web.media_link_seconds", s.web.media_link_seconds, 1.0, 900.0),
    ]
    for key, number, low, high in bounds:
        if not low <= number <= high:
            fail(key, f"is {number}, outside {low} to {high}")
    for i, pattern in enumerate(ing.filename_patterns):
        try:
            groups = set(re.compile(pattern).groupindex)
        except re.error as exc:
            fail(f"ingest.filename_patterns[{i}]", f"is not a valid regular expression: {exc}")
        if groups - PATTERN_GROUPS:
            fail(
                f"ingest.filename_patterns[{i}]",
                f"names unknown group(s) {', '.join(sorted(groups - PATTERN_GROUPS))}",
                f"known groups: {', '.join(sorted(PATTERN_GROUPS))}",
            )
    seen: set[str] = set()
    for i, station in enumerate(s.stations):
        try:
            check_code(station.id, "station id")
        except InvalidInput as exc:
            fail(f"stations[{i}].id", exc.message, exc.hint)
        if station.id in seen:
            fail(f"stations[{i}].id", f"repeats station {station.id!r}")
        seen.add(station.id)
        for j, folder in enumerate(station.folders):
            try:
                check_station_folders(s, [Path(folder).expanduser()])
            except SettingsError as exc:
                fail(f"stations[{i}].folders[{j}]", f"is refused: {exc.message}", exc.hint)
    _check_tsa(s.custody, fail)
    for i, proxy in enumerate(s.web.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            fail(f"web.trusted_proxies[{i}]", f"is not an address or network: {proxy!r}", "e.g. '10.0.0.5'")
    _check_web_address(s.web, fail)
    d = s.doctor
    for key, number, low, high in [
        ("doctor.min_free_gib", d.min_free_gib, 0.0, 1e6),
        ("doctor.ingest_hours", d.ingest_hours, 1e-6, 24 * 366.0),
        ("doctor.fixity_days", d.fixity_days, 1e-6, 3660.0),
        ("doctor.checkpoint_days", d.checkpoint_days, 1e-6, 3660.0),
        ("doctor.retention_days", d.retention_days, 1e-6, 3660.0),
        ("doctor.max_clock_skew_seconds", d.max_clock_skew_seconds, 0.001, 86400.0),
    ]:
        if not low <= number <= high:
            fail(key, f"is {number}, outside {low} to {high}")
    if not s.documents.types:
        fail("documents.types", "cannot be empty")
    unknown_types = set(s.coverage.on_site_types) - set(s.documents.types)
    if unknown_types:
        fail(
            "coverage.on_site_types",
            f"names types missing from documents.types: {', '.join(sorted(unknown_types))}",
        )


def _check_web_address(web: WebSettings, fail: typing.Callable[..., typing.NoReturn]) -> None:
    if not 1 <= web.port <= 65535:
        fail("web.port", f"is {web.port}, outside 1 to 65535")
    try:
        ipaddress.ip_address(web.host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", web.host):
            fail("web.host", f"is not an address or host name: {web.host!r}", "e.g. '127.0.0.1' or '0.0.0.0'")
    if web.public_url:
        parts = urlsplit(web.public_url)
        # The pages link and redirect to absolute paths ("/cases/…"), so they must be served
        # at the root of their address; a path prefix would need the proxy to rewrite them.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            fail(
                "web.public_url",
                f"is not an http or https URL: {web.public_url!r}",
                "e.g. 'https://evidence.example.org/'",
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            fail(
                "web.public_url",
                f"must be the site's root, not {web.public_url!r}",
                "serve the pages at the root of a host name, e.g. 'https://evidence.example.org/'",
            )


def _months(period: tuple[int, str]) -> float:
    count, unit = period
    return {"days": count / 31, "months": count, "years": count * 12}[unit]


def _check_tsa(c: CustodySettings, fail: typing.Callable[..., typing.NoReturn]) -> None:
    if not c.tsa_url:
        return
    parts = urlsplit(c.tsa_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail("custody.tsa_url", f"is not an http(s) URL: {c.tsa_url!r}", "e.g. 'http://tsa.example.org/tsr'")
    if not c.tsa_ca_file:
        fail(
            "custody.tsa_ca_file",
            "is empty while tsa_url is set",
            "the TSA's CA certificate (PEM) is needed to check its tokens",
        )
    if c.tsa_policy and not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", c.tsa_policy):
        fail("custody.tsa_policy", f"is not an object identifier: {c.tsa_policy!r}", "e.g. '1.2.3.4.1'")


def _check_database_url(url: str, fail: typing.Callable[..., typing.NoReturn]) -> None:
    from sqlalchemy.engine import make_url

    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - sqlalchemy raises ArgumentError for any malformed URL
        fail(
            "catalog.database_url",
            f"is not a database URL: {_hide(url)!r}",
            "e.g. postgresql+psycopg://user@127.0.0.1:5432/evidence",
        )
    if backend not in ("sqlite", "postgresql"):
        fail(
            "catalog.database_url",
            f"uses {backend}, which is not supported",
            "use sqlite:///PATH or postgresql+psycopg://…",
        )


def _check_storage_url(url: str, fail: typing.Callable[..., typing.NoReturn]) -> None:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path.startswith("/"):
            fail("storage.url", f"{url!r} needs an absolute path", "file:///srv/evidence/store")
    elif parts.scheme == "s3":
        if not parts.hostname or not parts.path.strip("/"):
            fail("storage.url", f"{url!r} needs a host and a bucket", "s3://HOST:PORT/BUCKET")
        query = parse_qs(parts.query)
        unknown = set(query) - {"secure", "region"}
        if unknown:
            fail(
                "storage.url",
                f"has unknown parameter(s) {', '.join(sorted(unknown))}",
                "known: secure=true|false, region=NAME",
            )
        bucket = parts.path.strip("/")
        if not BUCKET.match(bucket) or ".." in bucket:
            fail(
                "storage.url",
                f"names the bucket {bucket!r}, which S3 refuses",
                "use 3 to 63 lowercase letters, digits, dots or hyphens; a letter or digit at each end",
            )
    else:
        fail("storage.url", f"{url!r} is neither file:// nor s3://")


def _hide(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:" + MASK + "@", url)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets masked (for `config show`)."""
    data = dataclasses.asdict(settings)
    data["data_dir"] = str(settings.data_path)
    data["catalog"]["database_url"] = _hide(settings.database_url)
    data["storage"]["url"] = settings.storage_url
    for key in ("access_key", "secret_key"):
        if data["storage"][key]:
            data["storage"][key] = MASK
    data["custody"]["signing_key"] = str(settings.signing_key_path)
    data["encryption"]["key_file"] = str(settings.encryption_key_path)
    return data
