"""Who may use which route: one rule per route, checked for every request.

A route without a rule here answers 403 to everybody (and the access-matrix
test fails), so adding a page forces a decision about who may see it.
"""

from __future__ import annotations

PUBLIC = "public"

# route name -> the least role that may use it ("public": no session needed)
RULES: dict[str, str] = {
    "login": PUBLIC,
    "login_post": PUBLIC,
    "static": PUBLIC,
    "logout": "auditor",
    "search": "auditor",
    "case": "auditor",
    "case_gaps": "auditor",
    "case_export": "auditor",
    "item": "auditor",
    "item_verify": "auditor",
    "item_play": "auditor",
    "item_download": "auditor",
    "media": "auditor",
    "case_link": "legal",
    "item_unlink": "legal",
    "hold_set": "legal",
    "hold_release": "legal",
    "users": "admin",
    "users_add": "admin",
}
