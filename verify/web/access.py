"""Who may use which route: one rule per route, checked for every request.

The rules are applied in one place, the access gate (``gate.py``), to every route of the
app, static files included. A route without a rule here answers 403 to everybody (and the
access-matrix test fails), so adding a page forces a decision about who may see it.
"""

from __future__ import annotations

PUBLIC = "public"

# route name -> the least role that may use it ("public": no session needed)
RULES: dict[str, str] = {
    "healthz": PUBLIC,  # probes; answers only whether the catalog is reachable
    "login": PUBLIC,
    "login_post": PUBLIC,
    "static": PUBLIC,
    "logout": "auditor",
    "search": "auditor",
    "case": "auditor",
    "case_gaps": "auditor",
    "case_export": "auditor",
    "export_fetch": "auditor",
    "case_file_pdf": "auditor",
    "item": "auditor",
    "item_verify": "auditor",
    "item_play": "auditor",
    "item_download": "auditor",
    "item_link": "auditor",
    "item_picture": "auditor",
    "document_page": "auditor",
    "item_document": "auditor",
    "media": "auditor",
    "case_link": "legal",
    "item_unlink": "legal",
    "hold_set": "legal",
    "hold_release": "legal",
    "users": "admin",
    "users_add": "admin",
    "users_logout": "admin",
    "audit": "admin",
    "audit_csv": "admin",
    "audit_verify": "admin",
}

# Routes that serve content (media, downloads, and later posters, sheets and waveforms):
# without a session they answer 401 instead of redirecting a GET to the login page, whose
# HTML a player or a download would otherwise receive as the content.
CONTENT: frozenset[str] = frozenset(
    {
        "media",
        "item_download",
        "item_document",
        "case_file_pdf",
        "audit_csv",
        "item_link",
        "item_picture",
        "document_page",
    }
)
