"""The audit page (administrators): the whole custody chain by filter, its CSV, its state.

Filters by actor, action, subject and period, newest first, a page at a time (keyset paging
on the event number: a later page starts from an event number, it does not skip rows). The CSV holds
every event the filter finds; making it is itself a custody event, with its reason and the
filter. Events about protected records are left out (and values naming them redacted) for an
account without the grant, in the query, so neither the rows nor the counts reveal them.

The chain's state: the first visit walks the whole chain; later visits check only the events
appended since (from the last hash checked), and the checkpoints each time. "Verify the
whole chain now" walks it again from the start, which finds an older event altered since.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from catalog import audit, custody
from catalog.actions import Action
from catalog.chain import GENESIS_HASH, check_chain
from catalog.checkpoint import Checkpoint
from catalog.errors import InvalidInput
from catalog.times import parse_user_time

from .. import custody_text as ct
from .common import Refusal, event, render, site

FILTER_MAX = 200


@dataclass
class ChainState:
    """What this server knows about the chain: checked through ``seq`` (hash ``head``)."""

    seq: int = 0
    head: str = GENESIS_HASH
    problems: list[dict[str, Any]] = field(default_factory=list)
    full_walk_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _state(request: Request) -> ChainState:
    return request.app.state.chain


def _carried(cp: Checkpoint) -> bytes | None:
    try:
        return base64.b64decode(cp.public_key, validate=True) or None
    except ValueError:
        return None


def check(request: Request, *, full: bool = False) -> tuple[ChainState, dict[str, Any]]:
    """Bring the state up to the head (or walk it all again); the state and the checkpoints'."""
    web = site(request).web
    state = _state(request)
    with state.lock, web.reading() as session:
        if full or state.full_walk_at is None:
            report = custody.verify(session, web.anchors)
            state.seq, state.head = custody.head(session)
            state.problems = report.problems
            state.full_walk_at = web.now()
        else:
            more = check_chain(
                custody.events(session, after_seq=state.seq), start_seq=state.seq + 1, start_prev=state.head
            )
            state.problems += [
                {"seq": p.seq, "problem": p.problem, "detail": p.detail} for p in more.problems
            ]
            head_seq, _ = custody.head(session)
            if head_seq < more.last_seq:  # events checked before are gone: a restore, a deletion
                state.problems.append(
                    {
                        "seq": head_seq + 1,
                        "problem": "truncated",
                        "detail": f"the chain ends at event {head_seq}; event {more.last_seq} was checked",
                    }
                )
            state.seq, state.head = more.last_seq, more.last_hash
        points = custody.checkpoints(session)
        last = points[-1] if points else None
        head_seq, _ = custody.head(session)
        checkpoint = {
            "count": len(points),
            "last": last,
            # Trusted: signed by a pinned key (the installation's trust anchor), not merely valid.
            "valid": web.anchors.judge(last, _carried(last)) is None if last else None,
            "bad": [p.n for p in points if web.anchors.judge(p, _carried(p)) is not None],
            "head_seq": head_seq,
        }
    return state, checkpoint


@dataclass
class AuditFilterForm:
    """The query string as typed (to refill the form) and as a filter."""

    values: dict[str, str]
    filter: audit.AuditFilter

    @classmethod
    def read(cls, request: Request) -> AuditFilterForm:
        q = request.query_params
        values = {k: q.get(k, "").strip() for k in ("actor", "action", "subject", "from", "to")}
        if any(len(v) > FILTER_MAX for v in values.values()):
            raise Refusal(400, f"a filter is at most {FILTER_MAX} characters; shorten it")
        if values["action"] and values["action"] not in ct.ACTIONS:
            raise Refusal(400, f"no action {values['action']!r}; choose one from the list")
        zone = site(request).web.zone
        try:
            since = parse_user_time(values["from"], zone) if values["from"] else None
            until = parse_user_time(values["to"], zone, end_of_day=True) if values["to"] else None
        except InvalidInput as exc:
            raise Refusal(400, f"{exc.message}; {exc.hint}") from None
        return cls(
            values,
            audit.AuditFilter(
                actor=values["actor"] or None,
                action=values["action"] or None,
                subject=values["subject"] or None,
                since=since,
                until=until,
                include_protected=request.state.user.protected_access,
            ),
        )

    def query(self, **more: str | int) -> str:
        from urllib.parse import urlencode

        return urlencode({**{k: v for k, v in self.values.items() if v}, **more})


def _before(request: Request) -> int | None:
    text = request.query_params.get("before", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise Refusal(400, "before is an event number")
    return int(text)


def audit_page(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    form = AuditFilterForm.read(request)
    before = _before(request)
    state, checkpoint = check(request)
    with web.reading() as session:
        rows = audit.page(session, form.filter, before=before)
        total = audit.count(session, form.filter)
        hidden = set() if user.protected_access else audit.protected_numbers(session)
    log = ct.describe_all(rows, web.language, web.zone, hidden=hidden)
    older = form.query(before=rows[-1].seq) if len(rows) == audit.PAGE else None
    event(web, user, Action.VIEWED, None, page="audit", filters=form.filter.as_details(), rows=len(rows))
    return render(
        request,
        "audit.html",
        log=log,
        total=total,
        form=form.values,
        actions=[(code, ct.action_name(code, web.language)) for code in ct.ACTIONS],
        older=older,
        newest=form.query() if before is not None else None,
        export_query=form.query(),
        state=state,
        checkpoint=checkpoint,
        full_walk_at=ct.local_time(state.full_walk_at, web.zone),
        last_checkpoint_at=ct.local_time(checkpoint["last"].time, web.zone) if checkpoint["last"] else "",
    )


def audit_verify(request: Request) -> Response:
    """Walk the whole chain again from its first event."""
    check(request, full=True)
    return RedirectResponse("/audit", 303)


CSV_HEADINGS = {
    "zh": ["序号", "时间", "操作人", "操作", "操作代码", "对象", "详情", "事件哈希"],
    "en": ["seq", "time", "actor", "action", "action code", "subject", "details", "event hash"],
}


def audit_csv(request: Request) -> Response:
    """Every event the filter finds, as CSV (UTF-8 with a BOM, so spreadsheets read the CJK)."""
    web, user = site(request).web, request.state.user
    reason = request.query_params.get("reason", "").strip()
    if not reason:
        raise Refusal(400, "an export of the custody log needs a reason")
    if len(reason) > 1000:
        raise Refusal(400, "a reason is at most 1000 characters")
    form = AuditFilterForm.read(request)
    with web.reading() as session:
        rows = audit.count(session, form.filter)
        hidden = set() if user.protected_access else audit.protected_numbers(session)
    # Recorded before the first byte: an export that fails half-way was still made.
    event(
        web,
        user,
        Action.EXPORTED,
        None,
        format="csv",
        page="audit",
        reason=reason,
        filters=form.filter.as_details(),
        rows=rows,
    )
    lang, zone = web.language, web.zone
    heading = list(CSV_HEADINGS["en" if lang == "en" else "zh"])
    heading[1] += f" ({ct.zone_offset(web.now(), zone)})"

    def lines() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(heading)
        yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
        with web.reading() as session:
            for e in audit.stream(session, form.filter):
                buffer.seek(0)
                buffer.truncate()
                t = ct.describe(e, lang, zone, hidden=hidden)
                writer.writerow(
                    [
                        str(t.seq),
                        ct.local_time(e.time, zone, offset=True),
                        ct.csv_cell(t.actor),
                        t.action,
                        t.action_code,
                        ct.csv_cell(t.subject),
                        ct.csv_cell(t.details_text(lang)),
                        t.hash,
                    ]
                )
                yield buffer.getvalue().encode()

    stamp = web.now().astimezone(zone).strftime("%Y%m%d-%H%M%S")
    # A plain (sync) iterator: StreamingResponse reads it in the thread pool.
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="custody-{stamp}.csv"'},
    )
