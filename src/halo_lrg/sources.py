"""Where sweep files and indexes come from: local paths and ``file://`` URIs.

Every input goes through :func:`local_copy` (a local path for the duration of a ``with``
block) or :func:`read_text`, so the pipeline never cares where bytes live.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional
from urllib.parse import unquote, urlparse

from halo_lrg.config import Config


class SourceError(Exception):
    """An input cannot be fetched. ``str(err)`` names the URI and the cause."""

    def __init__(self, uri: str, cause: str, transient: bool = False) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri = uri
        self.cause = cause
        self.transient = transient


def scheme_of(uri: str) -> str:
    """``'file'`` for local paths and file:// URIs, else the URI's scheme."""
    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:  # '' or a Windows drive letter
        return "file"
    return parsed.scheme.lower()


def local_path(uri: str) -> str:
    """The filesystem path of a local path or ``file://`` URI."""
    if scheme_of(uri) != "file":
        raise ValueError(f"{uri}: not a local path")
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return os.path.expanduser(uri)


def _unsupported(uri: str) -> SourceError:
    return SourceError(uri, f"unsupported URI scheme {scheme_of(uri)!r} "
                            "(use a local path or file://)")


@contextmanager
def local_copy(uri: str, config: Config, workdir: Optional[str] = None) -> Iterator[str]:
    """A local path holding ``uri``'s bytes for the duration of the ``with`` block."""
    if scheme_of(uri) != "file":
        raise _unsupported(uri)
    path = local_path(uri)
    if not os.path.exists(path):
        raise SourceError(uri, "no such file")
    yield path


def read_text(uri: str, config: Config) -> str:
    """The whole text of a small file (an index)."""
    if scheme_of(uri) != "file":
        raise _unsupported(uri)
    try:
        with open(local_path(uri), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SourceError(uri, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(uri, f"cannot read ({exc})") from None


def file_size(uri: str, config: Config) -> Optional[int]:
    """Size in bytes if it can be known cheaply, else None."""
    if scheme_of(uri) == "file":
        try:
            return os.path.getsize(local_path(uri))
        except OSError:
            return None
    return None
