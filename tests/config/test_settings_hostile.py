"""Settings that used to crash later, or do harm, are refused at start naming the key."""

import pytest

from tests.conftest import run_evidence


@pytest.mark.parametrize(
    ("table", "line", "key"),
    [
        ("ingest", "stable_seconds = nan", "ingest.stable_seconds"),
        ("ingest", "stable_seconds = inf", "ingest.stable_seconds"),
        ("ingest", "rescan_seconds = -inf", "ingest.rescan_seconds"),
        ("ingest", "stable_seconds = 1e300", "ingest.stable_seconds"),
        ("ingest", "archived_keep_days = -1", "ingest.archived_keep_days"),
        ("ingest", "archived_keep_days = 99999999999", "ingest.archived_keep_days"),
        ("retention", 'routine = "99999999999 years"', "retention.routine"),
        ("retention", 'case_default = "5000000 days"', "retention.case_default"),
        ("storage", 'url = "s3://127.0.0.1:9000/b"', "storage.url"),
        ("storage", 'url = "s3://127.0.0.1:9000/Evidence_Bucket"', "storage.url"),
        ("web", 'trusted_proxies = ["a proxy"]', "web.trusted_proxies[0]"),
        ("custody", 'tsa_url = "ftp://tsa.example.org"', "custody.tsa_url"),
        ("custody", 'tsa_url = "http://tsa.example.org/"', "custody.tsa_ca_file"),
        (
            "custody",
            'tsa_policy = "not.an.oid"\ntsa_url = "http://t/"\ntsa_ca_file = "ca.pem"',
            "custody.tsa_policy",
        ),
        ("custody", "tsa_late_hours = -1", "custody.tsa_late_hours"),
        ("web", "session_idle_minutes = 0", "web.session_idle_minutes"),
        ("web", "session_idle_minutes = nan", "web.session_idle_minutes"),
        ("web", "session_max_hours = 1e9", "web.session_max_hours"),
        ("web", "password_cost_log2 = 4", "web.password_cost_log2"),
        ("web", "password_cost_log2 = 40", "web.password_cost_log2"),
        ("web", "media_link_seconds = 0", "web.media_link_seconds"),
        ("web", "media_link_seconds = 86400", "web.media_link_seconds"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_key(tmp_path, table, line, key) -> None:
    settings = tmp_path / "evidence.toml"
    settings.write_text(f'data_dir = "{tmp_path / "data"}"\n[{table}]\n{line}\n', encoding="utf-8")
    result = run_evidence("--config", str(settings), "init")
    assert result.returncode == 2, result.stdout + result.stderr
    assert key in result.stderr
    assert "internal error" not in result.stderr.lower() and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_sound_bounds_are_accepted(tmp_path) -> None:
    settings = tmp_path / "evidence.toml"
    settings.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[ingest]\narchived_keep_days = 0\nstable_seconds = 0\n'
        '[retention]\ncase_default = "30 years"\n',
        encoding="utf-8",
    )
    assert run_evidence("--config", str(settings), "config", "show").returncode == 0
