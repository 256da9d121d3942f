"""The catalog: models, migrations, numbering, the custody chain and cases."""

from .errors import (
    CatalogConflict,
    CheckFailed,
    EvidenceError,
    InvalidInput,
    NotFound,
    Refused,
    SchemaOutdated,
)
from .numbering import NumberingFormats

__all__ = [
    "CatalogConflict",
    "CheckFailed",
    "EvidenceError",
    "InvalidInput",
    "NotFound",
    "NumberingFormats",
    "Refused",
    "SchemaOutdated",
]
