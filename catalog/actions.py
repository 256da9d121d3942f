"""Every custody action, named once: writers, the catalog rebuild and the pages use these.

The values are what the chain stores (and what earlier events already carry), so a value
is never renamed; a new kind of event gets a new member.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    # ingest and storage
    INGESTED = "ingested"
    STORED = "stored"
    SEEN_AGAIN = "seen_again"
    METADATA_FILLED = "metadata_filled"
    DERIVATIVE_STORED = "derivative_stored"
    DERIVATIVE_PRUNED = "derivative_pruned"
    LINK_FAILED = "link_failed"
    # cases and their items
    CASE_OPENED = "case_opened"
    CASE_CLOSED = "case_closed"
    DOCUMENT_ADDED = "document_added"
    LINKED = "linked"
    UNLINKED = "unlinked"
    HELD = "held"
    RELEASED = "released"
    # checks, replays and exports
    VERIFIED = "verified"
    REPLAYED = "replayed"
    FIXITY_RUN = "fixity_run"
    FIXITY_PROBLEM = "fixity_problem"
    EXPORTED = "exported"
    EXPORT_FAILED = "export_failed"
    CHECKPOINT = "checkpoint"
    # the signing keys' history
    KEY_ROTATED = "key_rotated"
    KEY_RETIRED = "key_retired"
    # the custody v2 upgrade: binds a recording or document from before it to v2 links
    ATTESTED = "attested"
    # retention
    PENDING_DELETION = "pending_deletion"
    RESTORED = "restored"
    PURGED = "purged"
    RETENTION_RUN = "retention_run"
    # keys: a KEK rotation started, each batch of data keys wrapped again under the new KEK,
    # superseded wraps deleted
    KEK_ROTATED = "kek_rotated"
    KEYS_REWRAPPED = "keys_rewrapped"
    KEY_WRAPS_DELETED = "key_wraps_deleted"
    # devices and accounts
    DEVICE_ASSIGNED = "device_assigned"
    USER_ADDED = "user_added"
    PASSWORD_CHANGED = "password_changed"
    # the web pages
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    VIEWED = "viewed"  # a page about an item
    DOCUMENT_VIEWED = "document_viewed"  # a written record's content, shown in the browser
    PLAYED = "played"
    DOWNLOADED = "downloaded"  # a copy taken away, with its reason
    REFUSED = "refused"
    REFUSED_ANONYMOUS = "refused_anonymous"


CASE_EVENTS = frozenset(
    {
        Action.CASE_OPENED,
        Action.CASE_CLOSED,
        Action.LINKED,
        Action.UNLINKED,
        Action.HELD,
        Action.RELEASED,
        Action.DOCUMENT_ADDED,
    }
)
"""Actions whose events are also written to ``cases/{case_key}/events/`` in storage."""
