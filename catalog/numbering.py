"""The shared numbering scheme (共同编号), as plain functions over values.

Three kinds of number, each drawn from its own sequence ("scope"):

- archive number, at ingest: one sequence per unit, station and register day;
- case key, when a case is opened: one sequence per unit and year of opening;
- item number, when a record joins a case: one sequence per case, shared by
  documents and recordings alike.

Formats are ``str.format`` templates chosen in the settings. Numbers end up
in storage keys and file names, so a format must produce plain ASCII.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from .errors import InvalidInput

DEFAULT_ARCHIVE_FORMAT = "{unit}-{yyyymmdd}-{station}-{seq:04d}"
DEFAULT_ITEM_FORMAT = "{case_key}-{seq:03d}{kind}"
DEFAULT_CASE_KEY_FORMAT = "{unit}-{yyyy}-{seq:04d}"

ITEM_KIND_LETTERS = {"document": "D", "video": "V", "audio": "A", "photo": "P"}

# Safe in object keys, file names and URLs on every platform.
SAFE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAFE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")

_ARCHIVE_FIELDS = {"unit", "station", "yyyy", "mm", "dd", "yyyymmdd", "seq"}
_CASE_FIELDS = {"unit", "yyyy", "seq"}
_ITEM_FIELDS = {"case_key", "seq", "kind"}


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of an instant in the settings' time zone."""
    if moment.tzinfo is None:
        raise InvalidInput("an instant without a time zone has no day")
    return moment.astimezone(zone).date()


def _day_fields(day: date) -> dict[str, str]:
    return {
        "yyyy": f"{day.year:04d}",
        "mm": f"{day.month:02d}",
        "dd": f"{day.day:02d}",
        "yyyymmdd": day.strftime("%Y%m%d"),
    }


def check_code(value: str, what: str) -> str:
    """Unit and station codes go into numbers: short ASCII letters, digits, '-' and '_'."""
    if not SAFE_CODE.match(value or ""):
        raise InvalidInput(
            f"{what} {value!r} is not usable in numbers",
            hint="use 1 to 32 ASCII letters, digits, '-' or '_', starting with a letter or digit",
        )
    return value


def _render(template: str, what: str, **fields: object) -> str:
    number = template.format(**fields)
    if not SAFE_NUMBER.match(number):
        raise InvalidInput(
            f"{what} format {template!r} produced {number!r}, which is not plain ASCII",
            hint="use only ASCII letters, digits, '.', '-' and '_' in numbering formats",
        )
    return number


def template_fields(template: str) -> set[str]:
    try:
        return {
            name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        }
    except ValueError as exc:
        raise InvalidInput(f"numbering format {template!r} is malformed: {exc}") from exc


@dataclass(frozen=True)
class NumberingFormats:
    archive_number: str = DEFAULT_ARCHIVE_FORMAT
    item_number: str = DEFAULT_ITEM_FORMAT
    case_key: str = DEFAULT_CASE_KEY_FORMAT

    def __post_init__(self) -> None:
        self._check(
            "archive_number", self.archive_number, _ARCHIVE_FIELDS, {"unit", "station", "seq"}, needs_day=True
        )
        self._check("case_key", self.case_key, _CASE_FIELDS, {"unit", "yyyy", "seq"})
        self._check("item_number", self.item_number, _ITEM_FIELDS, {"case_key", "seq"})

    @staticmethod
    def _check(
        name: str, template: str, allowed: set[str], required: set[str], needs_day: bool = False
    ) -> None:
        used = template_fields(template)
        unknown = used - allowed
        if unknown:
            raise InvalidInput(
                f"numbering format {name} = {template!r} uses unknown field(s) {', '.join(sorted(unknown))}",
                hint=f"allowed fields: {', '.join(sorted(allowed))}",
            )
        missing = sorted(required - used)
        if needs_day and not ("yyyymmdd" in used or {"yyyy", "mm", "dd"} <= used):
            missing.append("yyyymmdd (or yyyy, mm and dd)")
        if missing:
            raise InvalidInput(
                f"numbering format {name} = {template!r} lacks {', '.join(missing)}",
                hint="every field that scopes the sequence must appear, or two numbers could be equal",
            )
        try:
            template.format(**({f: "X" for f in allowed} | {"seq": 1}))
        except (ValueError, KeyError, IndexError) as exc:
            raise InvalidInput(f"numbering format {name} = {template!r} is malformed: {exc}") from exc

    # archive numbers -----------------------------------------------------
    @staticmethod
    def archive_scope(unit: str, day: date, station: str) -> str:
        return f"archive:{unit}:{day:%Y%m%d}:{station}"

    def format_archive_number(self, unit: str, day: date, station: str, seq: int) -> str:
        return _render(
            self.archive_number, "archive number", unit=unit, station=station, seq=seq, **_day_fields(day)
        )

    # case keys -----------------------------------------------------------
    @staticmethod
    def case_key_scope(unit: str, year: int) -> str:
        return f"case:{unit}:{year:04d}"

    def format_case_key(self, unit: str, year: int, seq: int) -> str:
        return _render(self.case_key, "case key", unit=unit, yyyy=f"{year:04d}", seq=seq)

    # item numbers --------------------------------------------------------
    @staticmethod
    def item_scope(case_key: str) -> str:
        return f"item:{case_key}"

    def format_item_number(self, case_key: str, seq: int, kind: str) -> str:
        try:
            letter = ITEM_KIND_LETTERS[kind]
        except KeyError:
            raise InvalidInput(
                f"unknown item kind {kind!r}", hint=f"one of {', '.join(ITEM_KIND_LETTERS)}"
            ) from None
        return _render(self.item_number, "item number", case_key=case_key, seq=seq, kind=letter)


def template_regex(template: str) -> re.Pattern[str]:
    """A regex with one named group per field of a numbering template (for reading numbers back)."""
    pattern, used = "", set()
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is None:
            continue
        group = name if name not in used else None
        used.add(name)
        # Greedy text, fixed-width dates: backtracking finds the one reading that fits.
        body = {
            "seq": r"\d+",
            "yyyy": r"\d{4}",
            "mm": r"\d{2}",
            "dd": r"\d{2}",
            "yyyymmdd": r"\d{8}",
            "kind": "[DVAP]",
        }.get(name, r"[A-Za-z0-9_.-]+")
        pattern += f"(?P<{group}>{body})" if group else body
    return re.compile(f"^{pattern}$")


def parse_number(template: str, number: str) -> dict[str, str] | None:
    """The fields of ``number`` as made by ``template``, or None if it does not fit."""
    match = template_regex(template).match(number)
    return match.groupdict() if match else None
