"""Accounts and recorder assignments are custody events made by one service each."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from archive.accounts import add_account, assign_device, change_password
from catalog import custody
from catalog.errors import CatalogConflict, InvalidInput
from catalog.models import DeviceAssignment
from catalog.users import authenticate

ZONE = ZoneInfo("Asia/Shanghai")


def test_an_account_and_its_password_change_are_on_the_record(env) -> None:
    admin = env.as_("admin1")
    add_account(admin, "zhang", "legal", "a long enough password", protected=True, by=None)
    with pytest.raises(CatalogConflict):
        add_account(admin, "zhang", "auditor", "another long password", protected=False, by=None)
    with pytest.raises(InvalidInput):
        add_account(admin, "li", "auditor", "short", protected=False, by=None)
    change_password(admin, "zhang", "a new long password")
    with env.sessions() as s:
        assert authenticate(s, "zhang", "a new long password") is not None
        events = [(e.actor, e.action, e.subject, e.details) for e in custody.events(s)]
    assert events == [
        ("admin1", "user_added", "user:zhang", {"role": "legal", "protected": True}),
        ("admin1", "password_changed", "user:zhang", {}),
    ]


def test_a_device_assignment_is_recorded_with_local_times(env) -> None:
    start = datetime(2020, 11, 5, 0, 0, tzinfo=UTC)
    assign_device(env.as_("clerk"), "A123456", "JX0227", valid_from=start, valid_to=None, zone=ZONE)
    with env.sessions() as s:
        assert s.query(DeviceAssignment).count() == 1
        (event,) = custody.events(s)
    assert event.action == "device_assigned" and event.subject == "A123456"
    assert event.details == {"officer": "JX0227", "from": "2020-11-05T08:00:00+08:00", "to": None}
