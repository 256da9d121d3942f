"""Stores registered by URL scheme: the one place that turns a storage URL into a store.

``file:///path`` is the local WORM directory, ``s3://HOST:PORT/BUCKET`` an S3 service with
Object Lock. Another kind of store registers a factory for its scheme here and implements
``archive.store.ObjectStore``; nothing else in the code needs to know which store it has
(what a store can do beyond the interface is in its ``capabilities``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import StoreError
from .store import LockMode, ObjectStore


@dataclass(frozen=True)
class StoreOptions:
    """The settings a store may need, as values (built by ``config``)."""

    lock_mode: LockMode
    access_key: str | None = None
    secret_key: str | None = None
    part_size: int = 16 << 20
    read_back: bool = False


Factory = Callable[[str, StoreOptions], ObjectStore]
_FACTORIES: dict[str, Factory] = {}


def register(scheme: str, factory: Factory) -> None:
    """Make ``scheme://…`` URLs open stores made by ``factory(url, options)``."""
    _FACTORIES[scheme] = factory


def schemes() -> list[str]:
    return sorted(_FACTORIES)


def open_store(url: str, options: StoreOptions) -> ObjectStore:
    scheme = urlsplit(url).scheme
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise StoreError(
            f"storage URL {url!r} has an unknown scheme {scheme!r}",
            hint=f"use one of: {', '.join(f'{s}://' for s in schemes())}",
        )
    return factory(url, options)


def _local(url: str, options: StoreOptions) -> ObjectStore:
    from .local_store import LocalStore

    return LocalStore(Path(url.removeprefix("file://")), lock_mode=options.lock_mode)


def _s3(url: str, options: StoreOptions) -> ObjectStore:
    from .s3_store import S3Store

    return S3Store.from_url(
        url,
        options.access_key or "",
        options.secret_key or "",
        lock_mode=options.lock_mode,
        part_size=options.part_size,
        read_back=options.read_back,
    )


register("file", _local)
register("s3", _s3)
