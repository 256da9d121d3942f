from pathlib import Path

import pytest

from config.settings import (
    DEFAULT_FILENAME_PATTERNS,
    MASK,
    Settings,
    SettingsError,
    load_settings,
    masked,
    parse_period,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "evidence.example.toml"


def load(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None):
    path = None
    if text is not None:
        path = tmp_path / "evidence.toml"
        path.write_text(text, encoding="utf-8")
    return load_settings(path, env or {})


def test_defaults_put_everything_under_the_data_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s, warnings = load_settings(None, {})
    assert warnings == [] and s.source == "defaults"
    assert s.data_path == tmp_path / "evidence-data"
    assert s.database_url == f"sqlite:///{tmp_path}/evidence-data/catalog.sqlite3"
    assert s.storage_url == f"file://{tmp_path}/evidence-data/store"
    assert s.signing_key_path == tmp_path / "evidence-data" / "keys" / "custody-ed25519.pem"
    assert s.timezone == "Asia/Shanghai" and s.zone.key == "Asia/Shanghai"


def test_evidence_toml_in_the_working_directory_is_picked_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evidence.toml").write_text('unit = "KZCG"\n')
    s, _ = load_settings(None, {})
    assert s.unit == "KZCG" and s.source == "evidence.toml"


def test_evidence_config_variable_names_the_file(tmp_path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('unit = "LHCG"\n')
    s, _ = load_settings(None, {"EVIDENCE_CONFIG": str(path)})
    assert s.unit == "LHCG"


def test_the_example_file_documents_exactly_the_defaults(tmp_path) -> None:
    s, _ = load_settings(EXAMPLE, {"EVIDENCE_DATA_DIR": str(tmp_path)})
    d, _ = load_settings(None, {"EVIDENCE_DATA_DIR": str(tmp_path)})
    assert s == d
    assert s.ingest.filename_patterns == DEFAULT_FILENAME_PATTERNS


def test_environment_overrides_the_file(tmp_path) -> None:
    s, warnings = load(
        tmp_path,
        'timezone = "UTC"\n[catalog]\ndatabase_url = "sqlite:////x.db"\n',
        {
            "EVIDENCE_DATABASE_URL": "postgresql+psycopg://u@h:5432/db",
            "EVIDENCE_STORAGE_URL": "s3://127.0.0.1:9000/evidence?secure=false",
            "EVIDENCE_S3_ACCESS_KEY": "AK",
            "EVIDENCE_S3_SECRET_KEY": "SK",
            "EVIDENCE_TIMEZONE": "Asia/Urumqi",
            "EVIDENCE_DATA_DIR": str(tmp_path),
        },
    )
    assert warnings == []
    assert s.database_url == "postgresql+psycopg://u@h:5432/db"
    assert s.storage_url == "s3://127.0.0.1:9000/evidence?secure=false"
    assert (s.storage.access_key, s.storage.secret_key) == ("AK", "SK")
    assert s.timezone == "Asia/Urumqi" and s.data_path == tmp_path


def test_unknown_environment_variables_warn(tmp_path) -> None:
    _, warnings = load(tmp_path, env={"EVIDENCE_DATABSE_URL": "x", "EVIDENCE_TEST_PG_URL": "y"})
    assert len(warnings) == 1 and "EVIDENCE_DATABSE_URL" in warnings[0]


@pytest.mark.parametrize(
    "text, words",
    [
        ('unti = "X"\n', "unknown setting unti"),
        ('[storage]\nurl = "file:///x"\nlockmode = "GOVERNANCE"\n', "unknown setting storage.lockmode"),
        ('[[stations]]\nid = "ST01"\nfolder = ["/x"]\n', "unknown setting stations[0].folder"),
        ('[retention]\ngrace_days = "7"\n', "retention.grace_days in"),
        ("[retention]\ngrace_days = true\n", "must be an integer"),
        ('[storage]\nlock_mode = "NONE"\n', "storage.lock_mode"),
        ('timezone = "Mars/Olympus"\n', "names no known time zone"),
        ('unit = "开封"\n', "setting unit"),
        ('[numbering]\narchive_number = "{unit}-{seq}"\n', "setting numbering"),
        ('[catalog]\ndatabase_url = "mysql://x@y/z"\n', "not supported"),
        ('[storage]\nurl = "ftp://x/y"\n', "neither file:// nor s3://"),
        ('[storage]\nurl = "s3://host:9000"\n', "needs a host and a bucket"),
        ('[storage]\nurl = "s3://h:1/b?secur=false"\n', "unknown parameter(s) secur"),
        ("[storage]\npart_size_mib = 4\n", "between 5 and 5120"),
        ('[retention]\nroutine = "3 months"\n', "shorter than six months"),
        ('[retention]\nroutine = "forever"\n', "not a retention period"),
        ('[retention.case_types]\n"行政处罚" = "thirty years"\n', "retention.case_types.行政处罚"),
        ('[ingest]\nfilename_patterns = ["(unclosed"]\n', "ingest.filename_patterns[0]"),
        ('[ingest]\nfilename_patterns = ["(?P<serial>x)"]\n', "unknown group(s) serial"),
        ('[[stations]]\nid = "ST 1"\n', "stations[0].id"),
        ('[[stations]]\nid = "S"\n[[stations]]\nid = "S"\n', "repeats station"),
        ('[[stations]]\nname = "no id"\n', "lacks id"),
        ("unit = \n", "not valid TOML"),
    ],
)
def test_bad_settings_fail_naming_the_key_and_the_file(tmp_path, text: str, words: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, text)
    assert words in str(exc.value)
    assert str(tmp_path / "evidence.toml") in str(exc.value)


def test_bad_environment_values_are_refused_too(tmp_path) -> None:
    with pytest.raises(SettingsError, match="environment"):
        load(tmp_path, env={"EVIDENCE_TIMEZONE": "Nowhere/Else"})


def test_a_missing_file_is_an_error(tmp_path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", {})


def test_stations_and_retention_classes(tmp_path) -> None:
    s, _ = load(
        tmp_path,
        '[[stations]]\nid = "ST01"\nfolders = ["/srv/a", "/srv/b"]\n'
        '[retention.case_types]\n"行政处罚" = "30 years"\n',
    )
    assert s.station("ST01").folders == ["/srv/a", "/srv/b"] and s.station("X") is None
    assert s.retention.case_types == {"行政处罚": "30 years"}


def test_masked_hides_secrets_and_passwords(tmp_path) -> None:
    s, _ = load(
        tmp_path,
        '[catalog]\ndatabase_url = "postgresql+psycopg://ev:hunter2@db:5432/e"\n'
        '[storage]\naccess_key = "AKIA1"\nsecret_key = "s3cr3t"\n',
    )
    shown = repr(masked(s))
    for secret in ("hunter2", "AKIA1", "s3cr3t"):
        assert secret not in shown
    assert masked(s)["storage"]["secret_key"] == MASK
    assert "ev:" + MASK + "@db" in masked(s)["catalog"]["database_url"]


@pytest.mark.parametrize(
    "text, value",
    [("permanent", None), ("6 months", (6, "months")), ("1 year", (1, "years")), ("30 days", (30, "days"))],
)
def test_periods(text: str, value) -> None:
    assert parse_period(text) == value


def test_settings_are_immutable() -> None:
    with pytest.raises(AttributeError):
        Settings().unit = "X"  # type: ignore[misc]
