"""Where tasks stage downloads: the node's scratch disks on a cluster, and nothing left behind
by a task that was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from halo_lrg.io.workdir import (
    LOCK_NAME,
    STAGING_PREFIX,
    choose_root,
    remove_stale,
    staging_roots,
    task_workdir,
)


def test_roots_follow_config_then_yarn_then_spark_then_temp(tmp_path):
    yarn = [tmp_path / "mnt" / "yarn", tmp_path / "mnt1" / "yarn"]
    spark = tmp_path / "blockmgr"
    for d in (*yarn, spark):
        d.mkdir(parents=True)
    env = {"LOCAL_DIRS": ",".join(map(str, yarn)), "SPARK_LOCAL_DIRS": str(spark)}
    assert staging_roots("/explicit", env) == ["/explicit"]
    assert staging_roots("", env) == [str(d) for d in yarn]
    assert staging_roots("", {"SPARK_LOCAL_DIRS": str(spark)}) == [str(spark)]
    # directories that do not exist on this node are not candidates
    assert staging_roots("", {"LOCAL_DIRS": str(tmp_path / "gone")}) != [
        str(tmp_path / "gone")]
    assert choose_root([str(yarn[0])]) == str(yarn[0])


def test_a_task_directory_is_private_locked_and_removed(tmp_path):
    with task_workdir(str(tmp_path)) as path:
        name = os.path.basename(path)
        assert name.startswith(f"{STAGING_PREFIX}{os.getpid()}-")
        assert os.path.exists(os.path.join(path, LOCK_NAME))
        assert remove_stale(str(tmp_path)) == []  # a live task's directory is kept
    assert os.listdir(tmp_path) == []


def test_a_killed_tasks_directory_is_removed_by_the_next_task(tmp_path):
    # A worker that dies mid-task (SIGKILL: no finally runs) leaves its download behind.
    code = ("import sys, time\n"
            "from halo_lrg.io.workdir import task_workdir\n"
            "with task_workdir(sys.argv[1]) as path:\n"
            "    open(path + '/sweep.fits', 'wb').write(b'x' * 1000)\n"
            "    print(path, flush=True)\n"
            "    time.sleep(60)\n")
    worker = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    left = worker.stdout.readline().strip()
    try:
        assert remove_stale(str(tmp_path)) == []  # alive: its lock is held
        assert os.path.exists(left)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert os.path.exists(os.path.join(left, "sweep.fits"))
    with task_workdir(str(tmp_path)) as path:
        assert not os.path.exists(left)
        assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_an_unlocked_directory_of_a_live_process_is_kept(tmp_path):
    # Between mkdtemp and flock a starting task has no lock yet: only its pid tells.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        starting = tmp_path / f"{STAGING_PREFIX}{sleeper.pid}-abc"
        starting.mkdir()
        gone = tmp_path / f"{STAGING_PREFIX}{2**22 + 12345}-def"  # above pid_max: no process
        gone.mkdir()
        other = tmp_path / "someone-elses"
        other.mkdir()
        assert remove_stale(str(tmp_path)) == [str(gone)]
        assert starting.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale(str(tmp_path)) == [str(tmp_path / f"{STAGING_PREFIX}{sleeper.pid}-abc")]
