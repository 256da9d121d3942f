"""Schema versions: bring a catalog to the newest revision, or say what to run.

Migrations are Alembic revisions shipped inside this package
(``catalog/migrations``); no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from .errors import EvidenceError, SchemaOutdated

MIGRATIONS = Path(__file__).with_name("migrations")


class CatalogUnavailable(EvidenceError):
    """The catalog database cannot be reached."""


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, f"no migrations shipped in {MIGRATIONS}"
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise CatalogUnavailable(
            f"cannot reach the catalog database: {exc.orig}",
            hint="check EVIDENCE_DATABASE_URL / [catalog] database_url and that the server runs",
        ) from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after). Idempotent."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Refuse to work on a catalog that is missing or not at the newest revision."""
    current, newest = current_revision(engine), head_revision()
    if current is None:
        raise SchemaOutdated(
            f"the catalog at {engine.url.render_as_string(hide_password=True)} is not initialized",
            hint="run `evidence init`",
        )
    if current != newest:
        known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
        if current not in known:
            raise SchemaOutdated(
                f"the catalog is at revision {current}, which this program does not know",
                hint="it was written by a newer version of evidence-archive; upgrade this program",
            )
        raise SchemaOutdated(
            f"the catalog is at revision {current}, this program needs {newest}",
            hint="run `evidence init` to upgrade it (back up the database first)",
        )
