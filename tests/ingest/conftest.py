"""Fixtures for ingest: a station inbox of real media and an `evidence` set-up to run."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_evidence


def make_station(tmp_path: Path, db_url: str) -> dict:
    """A data folder, a settings file (no stability wait) and an empty inbox, on ``db_url``."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "evidence.toml"
    config.write_text(
        'unit = "KZCG"\n[ingest]\nstable_seconds = 0.0\nretry_seconds = 0.5\n', encoding="utf-8"
    )
    env = {
        "EVIDENCE_CONFIG": str(config),
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": db_url,
    }
    result = run_evidence("init", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {"inbox": inbox, "env": env, "tmp": tmp_path, "config": config}


@pytest.fixture
def station(tmp_path: Path, sqlite_url: str) -> dict:
    return make_station(tmp_path, sqlite_url)


def scan(station: dict, *extra: str, env: dict | None = None, expect: int | None = None):
    result = run_evidence(
        "ingest",
        "scan",
        "--station",
        "ST01",
        str(station["inbox"]),
        "--json",
        *extra,
        env=env or station["env"],
    )
    if expect is not None:
        assert result.returncode == expect, result.stderr
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def recordings(station: dict) -> list[dict]:
    """Archived recordings, straight from the catalog."""
    from sqlalchemy import create_engine, text

    engine = create_engine(station["env"]["EVIDENCE_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text("select * from recordings order by archive_no")).mappings().all()
    engine.dispose()
    return [dict(r) for r in rows]


def stored_originals(station: dict) -> list[str]:
    root = station["tmp"] / "data" / "store" / "objects" / "originals"
    return (
        sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(".manifest.json")
        )
        if root.exists()
        else []
    )


def files_in(folder: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        if folder.exists()
        else []
    )
