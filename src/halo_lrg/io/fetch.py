"""Where sweep files and indexes come from: local paths, ``file://``, ``s3://``, ``http(s)://``.

Every input goes through :func:`local_copy` (a local path for the duration of a ``with``
block: remote files are downloaded to a private temp directory, verified, and deleted when
the block ends, even when reading fails) or :func:`read_text`, so the pipeline never cares
where bytes live. Errors are :class:`SourceError` naming the URI, never a temp path.

Checksums: an :class:`InputHash` handed to :func:`local_copy` hears every byte of the input
(downloads as they arrive, local files read whole); :class:`ChecksumList` is a published
``sha256sum`` list (``<hex>  <path>`` lines, matched by the longest path suffix an input
ends with, so a combined north+south list tells same-named files apart) and
:func:`verify_sha256` compares. :func:`file_identity` says what an input is without reading it
(size plus ETag / modification time), for matching stored partial results.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from halo_lrg.config import Config
from halo_lrg.io.retry import TransientError
from halo_lrg.io.uri import (
    REMOTE_SCHEMES,
    is_s3,
    local_path,
    scheme_of,
    split_s3_uri,
)
from halo_lrg.io.workdir import task_workdir


class SourceError(Exception):
    """An input cannot be fetched. ``str(err)`` names the URI and the cause."""

    def __init__(self, uri: str, cause: str, transient: bool = False) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri = uri
        self.cause = cause
        self.transient = transient


def check_uri(uri: str) -> None:
    """Refuse a URI no source can read, before any work starts."""
    scheme = scheme_of(uri)
    if scheme != "file" and scheme not in REMOTE_SCHEMES:
        raise SourceError(uri, f"unsupported URI scheme {scheme!r} "
                               "(use a path, file://, s3:// or http(s)://)")
    if is_s3(uri):
        try:
            split_s3_uri(uri)
        except ValueError as exc:
            raise SourceError(uri, str(exc).split(": ", 1)[-1]) from None


@contextmanager
def _translated(uri: str) -> Iterator[None]:
    """Turn every fetch failure into a SourceError naming the URI."""
    from halo_lrg.io.http import PermanentHTTPError
    from halo_lrg.io.s3 import S3Error

    try:
        yield
    except TransientError as exc:
        raise SourceError(uri, str(exc), transient=True) from None
    except (PermanentHTTPError, S3Error) as exc:
        raise SourceError(uri, str(exc)) from None
    except OSError as exc:  # local disk full, temp dir missing...
        raise SourceError(uri, f"cannot store the download ({exc})") from None


def _download(uri: str, dest: str, config: Config, hasher: Optional[InputHash] = None) -> None:
    from halo_lrg.io import http as http_source
    from halo_lrg.io import s3 as s3_source

    with _translated(uri):
        if is_s3(uri):
            s3_source.download(uri, dest, config.remote, hasher=hasher)
        else:
            http_source.download(uri, dest, config.remote, hasher=hasher)


@contextmanager
def local_copy(uri: str, config: Config, hasher: Optional[InputHash] = None) -> Iterator[str]:
    """A local path holding ``uri``'s bytes for the duration of the ``with`` block.

    ``hasher`` hears every byte before the block starts: a download's as they arrive, a local
    file's by reading it whole (which costs more than counting it: see :func:`hash_file`)."""
    check_uri(uri)
    if scheme_of(uri) == "file":
        path = local_path(uri)
        if not os.path.exists(path):
            raise SourceError(uri, "no such file")
        if hasher is not None:
            try:
                hash_file(path, hasher)
            except OSError as exc:
                raise SourceError(uri, f"cannot read ({exc.strerror or exc})") from None
        yield path
        return
    with task_workdir(config.remote.tmp_dir) as workdir:
        dest = os.path.join(workdir, download_name(uri))
        _download(uri, dest, config, hasher)
        yield dest


# --- checksums ----------------------------------------------------------------------------------

class InputHash:
    """The SHA-256 of one input, fed as its bytes arrive; ``reset()`` when a download starts
    over (the download functions of :mod:`halo_lrg.io.http` and :mod:`halo_lrg.io.s3` take one
    as ``hasher``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._digest = hashlib.sha256()
        self.nbytes = 0

    def update(self, data: Any) -> None:
        self._digest.update(data)
        self.nbytes += len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


#: Bytes per read when hashing a local file (hashlib releases the GIL for each).
HASH_BLOCK = 1 << 22


def hash_file(path: str, hasher: InputHash) -> str:
    """Feed a whole local file to ``hasher``; its hex digest."""
    hasher.reset()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_BLOCK), b""):
            hasher.update(block)
    return hasher.hexdigest()


class ChecksumMismatch(SourceError):
    """The input's bytes are not the ones its checksum list describes."""

    def __init__(self, uri: str, expected: str, got: str) -> None:
        super().__init__(uri, f"SHA-256 mismatch: expected {expected}, got {got}")
        self.expected, self.got = expected, got


def verify_sha256(uri: str, hasher: InputHash, expected: Optional[str]) -> str:
    """The input's SHA-256; :class:`ChecksumMismatch` when ``expected`` says otherwise."""
    got = hasher.hexdigest()
    if expected is not None and got != expected:
        raise ChecksumMismatch(uri, expected, got)
    return got


_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def input_name(uri: str) -> str:
    """An input's base name, as progress lines and stored partials label it."""
    if scheme_of(uri) == "file":
        return os.path.basename(local_path(uri))
    return os.path.basename(unquote(urlparse(uri).path))


def path_segments(location: str) -> tuple[str, ...]:
    """The '/'-separated names of a location, as checksum matching compares them: a local
    path's (or ``file://``'s) directories and name, an S3 URI's bucket and key, a URL's host
    and (unquoted) path; empty and ``.`` segments dropped (``./a//b`` is ``a/b``)."""
    scheme = scheme_of(location)
    if scheme == "file":
        path = local_path(location)
    elif is_s3(location):
        parsed = urlparse(location)
        path = f"{parsed.netloc}/{parsed.path}"
    else:
        parsed = urlparse(location)
        path = f"{parsed.netloc}/{unquote(parsed.path)}"
    return tuple(s for s in path.split("/") if s not in ("", "."))


def _listed_segments(path: str) -> tuple[str, ...]:
    """:func:`path_segments` of a path as a checksum list gives it: a URL as a URL, anything
    else as a plain '/'-separated path (never expanded or resolved)."""
    if "://" in path:
        return path_segments(path)
    return tuple(s for s in path.split("/") if s not in ("", "."))


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many trailing segments ``a`` and ``b`` share."""
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


@dataclass
class ChecksumList:
    """A ``sha256sum`` list (``<hex>  <path>`` lines, as ``sha256sum`` writes and the
    survey publishes per sweep directory, with bare file names; or a combined list whose
    paths carry the directory that tells same-named files apart, e.g.
    ``north/sweep/9.0/sweep-150p030-160p035.fits``, as ``halo-lrg index --region both``
    writes).

    An input matches by path suffix, on '/' boundaries (:meth:`candidates`): the longest
    listed path the input's URI ends with; failing that (a list naming other directories,
    or ``./sub/name``), the entries sharing the longest tail with it (at least the base
    name). So a bare-name list matches by base name, and ``.../dr9/south/sweep/9.0/x.fits``
    picks the ``south/...`` entry of a combined list. Only a best match with several
    different hashes is ambiguous, and that input is refused naming the list, the input and
    the candidates."""

    source: str
    #: (listed path, sha256) in list order, each pair once; paths normalised
    #: (:func:`path_segments`: no ``./``, no empty segments).
    entries: list[tuple[str, str]] = field(default_factory=list)
    _by_name: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given, self.entries = self.entries, []
        for path, digest in given:
            self.add(path, digest)

    def add(self, path: str, digest: str) -> None:
        """List ``path`` (a relative path, an absolute one, or a URL) with ``digest``; a
        pair already listed is not listed again."""
        segments = _listed_segments(path)
        if not segments:
            raise ValueError(f"{self.source}: an entry without a file name ({path!r})")
        normalised = path if "://" in path else "/".join(segments)
        digest = digest.lower()
        same = self._by_name.setdefault(segments[-1], [])
        if any(s == segments and d == digest for s, d, _p in same):
            return
        same.append((segments, digest, normalised))
        self.entries.append((normalised, digest))

    @classmethod
    def parse(cls, text: str, source: str) -> ChecksumList:
        """Raises ValueError naming the list and the line for a line that is not
        ``<64 hex digits> <space or *><path>`` (blank lines and ``#`` comments are skipped)."""
        listed = cls(source)
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _SHA256_LINE.match(line)
            if match is None or not _listed_segments(match.group(2).strip()):
                raise ValueError(f"{source}: line {number} is not '<sha256>  <file name>': "
                                 f"{line[:80]!r}")
            listed.add(match.group(2).strip(), match.group(1))
        return listed

    def candidates(self, uri: str) -> list[tuple[str, str]]:
        """The listed ``(path, sha256)`` entries that name ``uri`` best: those whose whole
        path ``uri`` ends with (on '/' boundaries), the longest; when none is, those sharing
        the longest tail with ``uri`` (its base name at least). Empty: not listed. Several
        with different hashes: ambiguous (:meth:`expected` refuses it)."""
        segments = path_segments(uri)
        if not segments:
            return []
        same = self._by_name.get(segments[-1], [])
        scored = [(_common_tail(listed, segments) == len(listed),
                   _common_tail(listed, segments), path, digest)
                  for listed, digest, path in same]
        if not scored:
            return []
        best = max((whole, tail) for whole, tail, _p, _d in scored)
        return [(path, digest) for whole, tail, path, digest in scored
                if (whole, tail) == best]

    def expected(self, uri: str) -> Optional[str]:
        """The listed SHA-256 of ``uri`` (:meth:`candidates`), None when not listed;
        :class:`SourceError` naming the list, the input and the candidates when its best
        match is listed with different hashes."""
        found = self.candidates(uri)
        digests = {digest for _path, digest in found}
        if len(digests) > 1:
            paths = [path for path, _digest in found]
            segments = path_segments(uri)
            listed = _listed_segments(paths[0])
            tail = "/".join(segments[-_common_tail(listed, segments):])
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            why = ("" if _common_tail(listed, segments) == len(listed) else
                   ": the input's path ends with none of them, so which it is cannot be told")
            raise SourceError(uri, f"{self.source} lists {tail} {times} with different "
                                   f"SHA-256 values ({', '.join(paths)}){why}")
        return digests.pop() if digests else None

    def text(self) -> str:
        """The list as ``sha256sum`` lines (``<hex>  <path>``), in list order."""
        return "".join(f"{digest}  {path}\n" for path, digest in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def read_checksums(uri: str, config: Config) -> ChecksumList:
    """A checksum list from a path, ``file://``, ``s3://`` or ``http(s)://``;
    :class:`SourceError` naming it when it cannot be read or parsed."""
    text = read_text(uri, config)
    try:
        return ChecksumList.parse(text, uri)
    except ValueError as exc:
        raise SourceError(uri, str(exc).split(": ", 1)[-1]) from None


def download_name(uri: str) -> str:
    """The file name a download is staged under (the URI's last path segment)."""
    return os.path.basename(urlparse(uri).path) or "download"


def read_bytes(uri: str, config: Config) -> bytes:
    check_uri(uri)
    scheme = scheme_of(uri)
    if scheme == "file":
        try:
            with open(local_path(uri), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise SourceError(uri, "no such file") from None
        except OSError as exc:
            raise SourceError(uri, f"cannot read ({exc.strerror or exc})") from None
    from halo_lrg.io import http as http_source
    from halo_lrg.io import s3 as s3_source

    with _translated(uri):
        if is_s3(uri):
            return s3_source.read_bytes(uri, config.remote)
        return http_source.read_bytes(uri, config.remote)


def read_text(uri: str, config: Config) -> str:
    """The whole text of a small file (an index, a directory listing)."""
    data = read_bytes(uri, config)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(uri, "not UTF-8 text") from None


def write_bytes(uri: str, data: bytes, config: Config) -> None:
    """Write a small file (an index) to a local path or S3."""
    check_uri(uri)
    if is_s3(uri):
        from halo_lrg.io import s3 as s3_source

        with _translated(uri):
            s3_source.put_bytes(uri, data, config.remote)
        return
    if scheme_of(uri) != "file":
        raise SourceError(uri, "can only write to a local path or s3://")
    path = local_path(uri)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


@dataclass(frozen=True)
class InputIdentity:
    """What an input is, known without reading it: its size and a validator (ETag, or the
    modification time: nanoseconds for a local file, Last-Modified remotely)."""

    uri: str
    size: Optional[int]
    etag: Optional[str] = None
    modified: Optional[str] = None

    @property
    def known(self) -> bool:
        """Enough to tell a changed file: a size and at least one validator."""
        return self.size is not None and bool(self.etag or self.modified)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "etag": self.etag,
                "modified": self.modified}


def file_identity(uri: str, config: Config) -> InputIdentity:
    """Size and validators by stat, HEAD (HTTP) or HeadObject (S3); what cannot be known is
    None (a missing file is reported by its task, with the reason): never raises."""
    try:
        if scheme_of(uri) == "file":
            stat = os.stat(local_path(uri))
            return InputIdentity(uri, stat.st_size, modified=str(stat.st_mtime_ns))
        from halo_lrg.io import http as http_source
        from halo_lrg.io import s3 as s3_source

        if is_s3(uri):
            meta = s3_source.head(uri, config.remote)
            modified = meta.get("LastModified")
            return InputIdentity(uri, int(meta["ContentLength"]),
                                 str(meta.get("ETag") or "").strip('"') or None,
                                 modified.isoformat() if modified is not None else None)
        if scheme_of(uri) in ("http", "https"):
            headers = http_source.head(uri, config.remote)
            length = headers.get("content-length")
            return InputIdentity(uri, int(length) if length is not None else None,
                                 headers.get("etag"), headers.get("last-modified"))
    except Exception:  # the task reports the file's problem, with the reason
        pass
    return InputIdentity(uri, None)


def file_identities(uris: Sequence[str], config: Config) -> list[InputIdentity]:
    """:func:`file_identity` of many inputs, remote ones looked up concurrently."""
    if all(scheme_of(u) == "file" for u in uris):
        return [file_identity(u, config) for u in uris]
    with ThreadPoolExecutor(max_workers=max(1, config.remote.head_concurrency)) as pool:
        return list(pool.map(lambda u: file_identity(u, config), uris))


def file_size(uri: str, config: Config) -> Optional[int]:
    """Size in bytes if it can be known (stat, HEAD), else None: never raises."""
    try:
        if scheme_of(uri) == "file":
            return os.path.getsize(local_path(uri))
        from halo_lrg.io import http as http_source
        from halo_lrg.io import s3 as s3_source

        if is_s3(uri):
            return int(s3_source.head(uri, config.remote)["ContentLength"])
        if scheme_of(uri) in ("http", "https"):
            return http_source.content_length(uri, config.remote)
    except Exception:  # a missing file is reported by its task, with the reason
        return None
    return None


def file_sizes(uris: Sequence[str], config: Config) -> list[Optional[int]]:
    """Sizes of many inputs, remote ones looked up concurrently."""
    if all(scheme_of(u) == "file" for u in uris):
        return [file_size(u, config) for u in uris]
    with ThreadPoolExecutor(max_workers=max(1, config.remote.head_concurrency)) as pool:
        return list(pool.map(lambda u: file_size(u, config), uris))


def with_resolved_endpoint(config: Config) -> Config:
    """The config with the S3 endpoint made explicit, for tasks in other processes whose
    environment may differ from the driver's (AWS_ENDPOINT_URL[_S3] honoured as the SDKs
    do)."""
    from halo_lrg.io.s3 import endpoint_url

    endpoint = endpoint_url(config.remote)
    if endpoint and endpoint != config.remote.s3_endpoint_url:
        return config.replace(remote={"s3_endpoint_url": endpoint})
    return config
