"""Cases: open one under a new case key, find one by either of its names.

The bureau's own number (e.g. 开城管罚立〔2020〕42号) is kept verbatim beside
the ASCII case key; both are unique across both columns, so a name given on
the command line always means one case.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import custody, sequences
from .actions import Action
from .chain import CustodyEvent
from .errors import CatalogConflict, InvalidInput, NotFound
from .models import Case
from .numbering import NumberingFormats, check_code

MAX_NUMBER_LENGTH = 200
MAX_KEY_DRAWS = 1000


def check_case_number(number: str) -> str:
    """A bureau's case number is kept verbatim; it only has to be printable text."""
    if not number or not number.strip():
        raise InvalidInput("a case number cannot be empty")
    if len(number) > MAX_NUMBER_LENGTH:
        raise InvalidInput(f"case number is longer than {MAX_NUMBER_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in number):
        raise InvalidInput(f"case number {number!r} contains control characters")
    return number


def find_case(session: Session, name: str) -> Case | None:
    return (
        session.execute(select(Case).where(or_(Case.number == name, Case.case_key == name))).scalars().first()
    )


def get_case(session: Session, name: str) -> Case:
    case = find_case(session, name)
    if case is None:
        raise NotFound(
            f"no case is named {name!r}",
            hint="give the bureau's case number or the case key; `evidence case list` shows them",
        )
    return case


def _taken(session: Session, *names: str) -> bool:
    return (
        session.execute(select(Case.id).where(or_(Case.number.in_(names), Case.case_key.in_(names)))).first()
        is not None
    )


@dataclass(frozen=True)
class NewCase:
    number: str
    unit: str
    opened_on: date
    title: str | None = None
    case_type: str | None = None
    major: bool = False


OnWrite = Callable[[Session, Case, CustodyEvent], None]


def open_case(
    engine: Engine,
    sessions: sessionmaker[Session],
    formats: NumberingFormats,
    new: NewCase,
    *,
    actor: str,
    now: datetime,
    on_write: OnWrite | None = None,
) -> Case:
    """Open a case: allocate its key, write the row and its custody event.

    ``on_write`` runs inside the same transaction (the archive uses it to queue
    the case event for storage, so both commit or neither does).
    """
    number = check_case_number(new.number)
    unit = check_code(new.unit, "unit code")
    with sessions() as session:
        if _taken(session, number):
            raise CatalogConflict(
                f"a case named {number!r} exists already", hint="`evidence case show` displays it"
            )
    # The key is drawn (and committed) before the writing transaction starts:
    # on SQLite a second writer would otherwise wait on our own lock. A key
    # that equals some bureau's number is skipped (left as a gap), never shared.
    scope = formats.case_key_scope(unit, new.opened_on.year)
    for _ in range(MAX_KEY_DRAWS):
        case_key = formats.format_case_key(unit, new.opened_on.year, sequences.allocate(engine, scope))
        try:
            with sessions.begin() as session:
                if _taken(session, number):
                    raise CatalogConflict(f"a case named {number!r} exists already")
                if _taken(session, case_key):
                    continue
                case = Case(
                    case_key=case_key,
                    number=number,
                    title=new.title,
                    case_type=new.case_type,
                    unit=unit,
                    major=new.major,
                    status="open",
                    opened_on=new.opened_on,
                    created_at=now,
                    created_by=actor,
                )
                session.add(case)
                session.flush()
                event = custody.append(
                    session,
                    actor=actor,
                    action=Action.CASE_OPENED,
                    subject=case_key,
                    details={
                        "number": number,
                        "title": new.title,
                        "type": new.case_type,
                        "unit": unit,
                        "opened_on": new.opened_on.isoformat(),
                        "major": new.major,
                    },
                )
                if on_write is not None:
                    on_write(session, case, event)
        except IntegrityError as exc:
            raise CatalogConflict(f"a case named {number!r} was opened at the same moment") from exc
        return case
    raise CatalogConflict(
        f"no free case key in {scope} after {MAX_KEY_DRAWS} draws",
        hint="bureau numbers shaped like case keys fill this range; change [numbering] case_key",
    )


def list_cases(session: Session, *, open_only: bool = False) -> list[Case]:
    query = select(Case).order_by(Case.opened_on, Case.case_key)
    if open_only:
        query = query.where(Case.status == "open")
    return list(session.execute(query).scalars())
