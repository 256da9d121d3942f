"""The data folder, catalog and store are the service account's alone (issue 14, item 11)."""

import stat

from tests.conftest import run_evidence


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_and_tightens_private_data(tmp_path) -> None:
    data, store = tmp_path / "data", tmp_path / "store"
    settings = tmp_path / "evidence.toml"
    settings.write_text(f'data_dir = "{data}"\n[storage]\nurl = "file://{store}"\n', encoding="utf-8")
    assert run_evidence("--config", str(settings), "init").returncode == 0
    catalog = data / "catalog.sqlite3"
    for path in (data, store, catalog):
        assert _mode(path) & 0o077 == 0, f"{path} is {_mode(path):04o}"
    for path, mode in ((data, 0o755), (store, 0o755), (catalog, 0o644)):
        path.chmod(mode)
    assert run_evidence("--config", str(settings), "init").returncode == 0
    assert (_mode(data), _mode(store), _mode(catalog)) == (0o700, 0o700, 0o600)
