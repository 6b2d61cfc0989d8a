"""Make each task of a reused PySpark 3.5 Python worker cheap.

Measured in Spark 3.5 local mode on Python 3.11, a ``mapInPandas`` task that does nothing
cost ~110 ms of a task slot; one file per task makes that a tax on every file. Three causes,
each removed here from inside the worker (the JVM side is not ours to change):

1. **Zip directories re-read at every task.** The worker calls ``importlib.invalidate_caches()``
   per task; on Python 3.10/3.11 each cached ``zipimporter`` then re-parses its archive's
   whole directory (CPython gh-103200, lazy from 3.12; Spark's side is SPARK-54744, in 4.2),
   and ``pyspark.zip`` is always on a worker's path: ~0.1 CPU-second a task. Fixed by
   re-reading an archive only when its (mtime, size, inode) changed.
2. **Nagle against delayed ACK.** The JVM writes a task's header, then its command and data,
   on a socket with Nagle's algorithm on, so the second write waits for the ACK of the first;
   the worker's kernel delays that ACK ~40 ms, because the previous task's request/reply
   exchange put the socket in "pingpong" mode (seen with tcpdump: ack after 44 ms, the rest
   of the task 20 µs later). Fixed by setting ``TCP_QUICKACK`` on the worker's socket after
   each task, from a ``gc`` callback: the daemon runs ``gc.collect()`` between tasks, after the
   reply is flushed and before the next header arrives. Linux only (elsewhere, skipped).
3. **A full ``gc.collect()`` after every task** over ~85,000 import-time objects: ~30 ms of
   CPU a task. Fixed by ``gc.freeze()`` once the worker's imports are done, so collections
   only walk what tasks allocate. The first task's own objects are frozen too: a one-off,
   bounded cost (one task's closure).

With all three, and the JVM's C1-only JIT in local mode (``run.local_java_options``), a
no-op task costs ~18 ms of a task slot instead of ~105 (``make bench``, 2 cores). Everything
here is idempotent and runs only inside worker processes (the first task installs it for
that worker's life).

It patches interpreter internals (``zipimport``) and relies on PySpark 3.5's worker layout
(the daemon's ``sock``), so it is **opt-in** (``run.tune_python_workers = true``) and applies
only where it was verified: local masters (where task slots are short and the saving is
large), PySpark 3.5. On a cluster a task reads a sweep for tens of seconds and the saving is a
fraction of a percent: :func:`decide` declines there and says why.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import socket
import sys
import zipimport
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Optional

#: PySpark (major, minor) versions whose worker layout this was verified against.
VERIFIED_PYSPARK = ((3, 5),)

#: Interpreters whose zipimporter re-reads its directory eagerly on invalidation.
EAGER_ZIP_INVALIDATION = ((3, 10), (3, 11))
_MARK = "_halo_lrg_lazy_invalidation"


@dataclass(frozen=True)
class Tuning:
    """Which fixes are active in this process."""

    lazy_zip_invalidation: bool
    quick_acks: bool
    frozen_imports: bool


_installed: Optional[Tuning] = None


@dataclass(frozen=True)
class Decision:
    """Whether a run applies the tuning, and why (for the log and the manifest)."""

    requested: bool
    apply: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "applied": self.apply, "reason": self.reason}


def decide(requested: bool, master: str, pyspark_version: Optional[str] = None) -> Decision:
    """Apply the tuning only when asked, on a local master, with a verified PySpark."""
    if not requested:
        return Decision(False, False, "not requested (run.tune_python_workers = false)")
    if not master.startswith("local"):
        return Decision(True, False, f"not applied: master {master} is not local (verified "
                                     "on local masters only, where tasks are short)")
    if pyspark_version is None:
        import pyspark

        pyspark_version = pyspark.__version__
    try:
        major_minor = tuple(int(p) for p in pyspark_version.split(".")[:2])
    except ValueError:
        major_minor = ()
    if major_minor not in VERIFIED_PYSPARK:
        return Decision(True, False, f"not applied: PySpark {pyspark_version} is not a "
                                     "verified version (3.5)")
    return Decision(True, True, f"applied (master {master}, PySpark {pyspark_version})")


def install(preload: Iterable[str] = ()) -> Tuning:
    """Apply all three fixes in this (worker) process; import ``preload`` modules first so
    that they are frozen too. Idempotent: later calls return the first call's result."""
    global _installed
    if _installed is None:
        for name in preload:
            # A missing module is the task's to report, naming the file it was reading.
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        sock = find_worker_socket(sys._getframe(1))
        _installed = Tuning(
            lazy_zip_invalidation=lazy_zip_invalidation(),
            quick_acks=sock is not None and quick_acks_between_tasks(sock),
            frozen_imports=freeze_imports(),
        )
    return _installed


# --- 1. zip directories ---------------------------------------------------------------------

def zip_invalidation_is_eager(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> bool:
    return tuple(version[:2]) in EAGER_ZIP_INVALIDATION


def lazy_zip_invalidation() -> bool:
    """Make ``zipimporter.invalidate_caches`` re-read an archive only when it changed.

    Returns True if active in this process (now or before), False where not needed."""
    importer = zipimport.zipimporter
    if getattr(importer.invalidate_caches, _MARK, False):
        return True
    if not zip_invalidation_is_eager() or not hasattr(importer, "invalidate_caches"):
        return False
    original = importer.invalidate_caches
    read_as: dict[str, tuple[int, int, int]] = {}

    def invalidate_caches(self: Any) -> None:
        try:
            stat = os.stat(self.archive)
        except OSError:
            original(self)  # gone or unreadable: let zipimport drop it as it would
            read_as.pop(self.archive, None)
            return
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = zipimport._zip_directory_cache.get(self.archive)  # type: ignore[attr-defined]
        if cached is not None and read_as.get(self.archive) == signature:
            self._files = cached  # what the eager re-read would have produced
            return
        original(self)
        read_as[self.archive] = signature

    setattr(invalidate_caches, _MARK, True)
    invalidate_caches.__doc__ = original.__doc__
    importer.invalidate_caches = invalidate_caches  # type: ignore[method-assign]
    return True


# --- 2. delayed ACKs --------------------------------------------------------------------------

def find_worker_socket(frame: Optional[FrameType]) -> Optional[socket.socket]:
    """The TCP socket to the JVM: the ``sock`` that PySpark's daemon (or, without the daemon,
    ``worker.py``'s main) holds further up this task's call stack. None if not found."""
    while frame is not None:
        candidate = frame.f_locals.get("sock")
        if (isinstance(candidate, socket.socket) and candidate.type == socket.SOCK_STREAM
                and candidate.family in (socket.AF_INET, socket.AF_INET6)):
            return candidate
        frame = frame.f_back
    return None


def quick_acks_between_tasks(sock: socket.socket) -> bool:
    """After every full collection (the daemon's, between tasks), put ``sock`` back in quick
    ACK mode. Returns False where the platform has no TCP_QUICKACK."""
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is None:
        return False

    def after_full_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            # OSError: the JVM closed the socket; this worker is about to exit.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, 1)
    except OSError:
        return False
    gc.callbacks.append(after_full_collection)
    return True


# --- 3. the per-task full collection ------------------------------------------------------------

def freeze_imports() -> bool:
    """Collect once, then move every surviving object out of the collector's sight."""
    gc.collect()
    gc.freeze()
    return True
