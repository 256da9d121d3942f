"""The auditors' web pages."""

from .app import WebContext, create_app

__all__ = ["WebContext", "create_app"]
