"""The archive's settings as one value (built by ``config``, which alone reads settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from .retention import Period


@dataclass(frozen=True)
class ArchivePolicy:
    """The settings the archive needs, as values (built by ``config``)."""

    zone: ZoneInfo
    routine: Period = (6, "months")
    sm3: bool = False
    encryption_mode: Literal["none", "protected", "all"] = "protected"
    algorithm: str = "AES-256-GCM"
    # The shortest lock an original gets, even when its routine period is over.
    min_lock: timedelta = timedelta(days=1)

    def encrypts(self, protected: bool) -> bool:
        return self.encryption_mode == "all" or (self.encryption_mode == "protected" and protected)
