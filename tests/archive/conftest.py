"""Archive tests use the shared fixtures of tests/conftest.py (``env``, ``store``)."""

from tests.conftest import FORMATS, ZONE, Env  # noqa: F401 - imported by the test modules
