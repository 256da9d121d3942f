"""The start page's reads on real SQLite and PostgreSQL: filters, paging, and numbers."""

from datetime import date, timedelta

import pytest
from sqlalchemy import update

from archive.cases import open_case
from archive.encryption import generate_kek
from archive.holds import set_hold
from archive.links import link_recordings
from archive.policy import ArchivePolicy
from catalog.case_list import Filters, find_number, held_keys, list_cases
from catalog.cases import NewCase
from catalog.db import session_factory
from catalog.models import Case
from tests.conftest import ZONE, Env


@pytest.fixture
def env(engine, local_store, tmp_path) -> Env:
    return Env(
        engine,
        session_factory(engine),
        local_store,
        tmp_path,
        ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3)),
    )


@pytest.fixture
def cases(env):
    clerk = env.as_("clerk")
    made = []
    for n in range(12):
        made.append(
            open_case(
                clerk,
                NewCase(
                    number=f"开城管罚立〔2020〕{n + 1}号",
                    unit="KZCG" if n % 3 else "KZZF",
                    opened_on=date(2020, 1, 1) + timedelta(days=n),
                    case_type="占道经营" if n % 2 else "违法建设",
                ),
            )
        )
    with env.sessions.begin() as s:
        s.execute(update(Case).where(Case.case_key == made[0].case_key).values(status="closed"))
    plain = env.recording(1, officer="JX0227", device="TA00716")
    secret = env.recording(2, generate_kek(), officer="JX9931", device="B7766554", protected=True)
    ((_, plain_item),) = link_recordings(clerk, made[5].number, [plain.archive_no])
    ((_, secret_item),) = link_recordings(clerk, made[7].number, [secret.archive_no])
    set_hold(env.as_("legal"), plain_item, reason="复议")
    set_hold(env.as_("legal"), made[9].case_key, reason="诉讼")
    return {
        "cases": made,
        "plain": plain,
        "secret": secret,
        "plain_item": plain_item,
        "secret_item": secret_item,
        "unlinked": env.recording(3, officer="JX0227"),
    }


def keys(rows) -> list[str]:
    return [c.case_key for c in rows]


def test_most_recent_first_a_page_at_a_time_and_filters_combine(env, cases) -> None:
    made = cases["cases"]
    with env.sessions() as s:
        pages = [list_cases(s, Filters(), protected_access=False, page=n, per_page=5) for n in (1, 2, 3, 9)]
    assert [total for _, total in pages] == [12] * 4
    assert [len(rows) for rows, _ in pages] == [5, 5, 2, 0]
    assert keys(pages[0][0] + pages[1][0] + pages[2][0]) == [c.case_key for c in reversed(made)]
    with env.sessions() as s:

        def found(**given) -> list[str]:
            rows, total = list_cases(s, Filters(**given), protected_access=False, per_page=100)
            assert total == len(rows)
            return sorted(keys(rows))

        assert found(status="closed") == [made[0].case_key]
        assert len(found(status="open")) == 11
        assert found(held=True) == sorted([made[5].case_key, made[9].case_key])
        assert len(found(case_type="占道经营")) == 6
        assert len(found(unit="KZZF")) == 4
        assert found(opened_from=date(2020, 1, 3), opened_to=date(2020, 1, 4)) == sorted(
            [made[2].case_key, made[3].case_key]
        )
        assert found(officer="JX0227") == [made[5].case_key]
        assert found(unit="KZZF", case_type="违法建设", opened_to=date(2020, 1, 10)) == sorted(
            c.case_key for c in made[:10] if c.unit == "KZZF" and c.case_type == "违法建设"
        )
        assert held_keys(s, made) == {made[5].case_key, made[9].case_key}
    # A protected recording leads nowhere without the grant.
    secret = cases["secret"]
    with env.sessions() as s:
        for number in (secret.archive_no, "JX9931", "B7766554"):
            assert find_number(s, number, protected_access=False) is None, number
            assert find_number(s, number, protected_access=True) is not None, number
        assert list_cases(s, Filters(officer="JX9931"), protected_access=False)[1] == 0
        assert keys(list_cases(s, Filters(officer="JX9931"), protected_access=True)[0]) == [made[7].case_key]


def test_every_kind_of_number_goes_to_what_it_names(env, cases) -> None:
    made = cases["cases"]
    with env.sessions() as s:

        def go(text):
            return find_number(s, text, protected_access=True)

        assert go(made[3].number).case_key == made[3].case_key
        assert go(made[3].case_key).case_key == made[3].case_key
        assert go(cases["plain_item"]).item_no == cases["plain_item"]
        assert go(cases["plain"].archive_no).item_no == cases["plain_item"]
        assert go("JX9931").case_key == made[7].case_key  # the officer is in one case: straight there
        assert go("TA00716").case_key == made[5].case_key  # a device, likewise
        unlinked = go(cases["unlinked"].archive_no)
        assert unlinked is not None and unlinked.item_no is None and unlinked.case_key is None
        assert go("no such number") is None
        assert go("%") is None  # LIKE characters are plain text here
    # An officer in several cases lists them, most recent first.
    other = cases["unlinked"]
    link_recordings(env.as_("clerk"), made[11].number, [other.archive_no])
    with env.sessions() as s:
        found = find_number(s, "JX0227", protected_access=False)
    assert found is not None and found.cases == (made[11].case_key, made[5].case_key)
