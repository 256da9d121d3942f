"""The auditors' web pages."""

from .app import create_app
from .context import WebContext

__all__ = ["WebContext", "create_app"]
