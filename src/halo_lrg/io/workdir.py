"""Where a task stages the file it downloads, and how a dead task's leftovers are reclaimed.

On a cluster a sweep (up to ~1.9 GB) must land on the node's disks, not in ``/tmp``, which
can be RAM (tmpfs) outside YARN's memory accounting. The staging root is, in order:
``remote.tmp_dir`` when set; YARN's container directories (``LOCAL_DIRS``, on EMR under
``/mnt*/yarn`` on instance store or EBS); the directories Spark hands its Python workers
(``SPARK_LOCAL_DIRS``, its block manager's, which on YARN lie in the same container
directories); else the system temp directory (a laptop). Of several, the one with the most
free space.

A task that is killed (cancellation, executor loss) cannot run its ``finally``. Each task's
directory is named ``halo-lrg-task-<pid>-…`` and holds a ``.lock`` the task keeps locked
(``flock``) while it runs; the kernel drops the lock when the process dies. Every new task
first removes the directories of its root whose lock is free, or whose process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Optional

log = logging.getLogger(__name__)

STAGING_PREFIX = "halo-lrg-task-"
LOCK_NAME = ".lock"
#: Environment variables naming a node's scratch directories, most specific first.
SCRATCH_ENV = ("LOCAL_DIRS", "SPARK_LOCAL_DIRS")


def staging_roots(tmp_dir: str = "", env: Optional[Mapping[str, str]] = None) -> list[str]:
    """The candidate roots, by the rule in the module docstring (existing directories only,
    except an explicit ``tmp_dir``, which is created)."""
    if tmp_dir:
        return [tmp_dir]
    env = os.environ if env is None else env
    for name in SCRATCH_ENV:
        found = [d for d in env.get(name, "").split(",") if d.strip() and os.path.isdir(d)]
        if found:
            return found
    return [tempfile.gettempdir()]


def choose_root(roots: list[str]) -> str:
    """The root with the most free space (ties: the first)."""
    def free(path: str) -> int:
        try:
            stat = os.statvfs(path)
        except OSError:
            return -1
        return stat.f_bavail * stat.f_frsize

    return max(roots, key=free)


def _pid_of(name: str) -> Optional[int]:
    digits = name[len(STAGING_PREFIX):].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _is_stale(path: str) -> bool:
    """True when no live task owns ``path``: its lock can be taken, or its process is gone."""
    pid = _pid_of(os.path.basename(path))
    if pid == os.getpid():
        return False  # this process's own, still in use by an enclosing task
    try:
        fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDONLY)
    except FileNotFoundError:
        # Created but not yet locked (a task starting now), or never locked: only the
        # process can tell.
        return pid is not None and not _process_alive(pid)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live task holds it
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return True


def remove_stale(root: str) -> list[str]:
    """Remove the staging directories in ``root`` left by tasks that died; return them."""
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False) \
                and _is_stale(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            log.info("removed %s, left by a task that died", entry.path)
            removed.append(entry.path)
    return removed


@contextlib.contextmanager
def task_workdir(tmp_dir: str = "", env: Optional[Mapping[str, str]] = None) -> Iterator[str]:
    """A private directory for one task's download, locked while the task runs and removed
    when it ends, whatever happens (and by a later task if this one is killed)."""
    root = choose_root(staging_roots(tmp_dir, env))
    os.makedirs(root, exist_ok=True)
    remove_stale(root)
    path = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=root)
    lock = os.open(os.path.join(path, LOCK_NAME), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(lock)
        shutil.rmtree(path, ignore_errors=True)
