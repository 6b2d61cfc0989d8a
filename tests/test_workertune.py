"""workertune: each fix does what it says, and all of them apply inside a real Spark worker."""

from __future__ import annotations

import gc
import importlib
import os
import socket
import sys
import zipfile
import zipimport

import pandas as pd
import pytest

from halo_lrg.spark import tuning as workertune

needs_zip_fix = pytest.mark.skipif(not workertune.zip_invalidation_is_eager(),
                                   reason="this interpreter invalidates zip caches lazily")


@pytest.fixture
def restored_importer(monkeypatch):
    """Undo the zip fix after the test (monkeypatch restores the original method)."""
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches",
                        zipimport.zipimporter.invalidate_caches)
    return monkeypatch


@pytest.fixture
def zipped_module(tmp_path, monkeypatch):
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("halo_zip_probe.py", "VALUE = 1\n")
        for k in range(200):  # a directory worth re-reading
            zf.writestr(f"pkg/mod{k}.py", "")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.delitem(sys.modules, "halo_zip_probe", raising=False)
    yield archive
    sys.modules.pop("halo_zip_probe", None)
    sys.path_importer_cache.pop(str(archive), None)


@pytest.fixture
def loopback_pair():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    yield client, accepted
    for s in (client, accepted, server):
        s.close()


def test_only_python_310_and_311_invalidate_zip_caches_eagerly():
    versions = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
    assert [v for v in versions if workertune.zip_invalidation_is_eager(v)] == \
        [(3, 10), (3, 11)]


@needs_zip_fix
def test_an_unchanged_zip_is_not_reread_and_a_changed_one_is(restored_importer, zipped_module):
    import halo_zip_probe

    assert halo_zip_probe.VALUE == 1
    reads = []
    original_read = zipimport._read_directory
    restored_importer.setattr(zipimport, "_read_directory",
                              lambda path: reads.append(path) or original_read(path))
    importlib.invalidate_caches()
    assert reads == [str(zipped_module)], "without the fix every invalidation re-reads"

    assert workertune.lazy_zip_invalidation() is True
    assert workertune.lazy_zip_invalidation() is True  # idempotent: no second wrapper
    reads.clear()
    for _ in range(6):
        importlib.invalidate_caches()
    assert reads == [str(zipped_module)], "read once to learn its signature, then never"

    stat = os.stat(zipped_module)
    with zipfile.ZipFile(zipped_module, "w") as zf:
        zf.writestr("halo_zip_probe.py", "VALUE = 22\n")
    os.utime(zipped_module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    reads.clear()
    importlib.invalidate_caches()
    assert reads == [str(zipped_module)]
    del sys.modules["halo_zip_probe"]
    assert importlib.import_module("halo_zip_probe").VALUE == 22


@needs_zip_fix
def test_a_vanished_zip_is_dropped_as_zipimport_would(restored_importer, zipped_module):
    import halo_zip_probe  # noqa: F401  (puts the archive's importer in the cache)

    workertune.lazy_zip_invalidation()
    importlib.invalidate_caches()
    importer = sys.path_importer_cache[str(zipped_module)]
    os.remove(zipped_module)
    importlib.invalidate_caches()
    assert importer._files == {}


@pytest.mark.skipif(workertune.zip_invalidation_is_eager(), reason="needs the fix here")
def test_no_zip_fix_where_none_is_needed(restored_importer):
    before = zipimport.zipimporter.__dict__.get("invalidate_caches")
    assert workertune.lazy_zip_invalidation() is False
    assert zipimport.zipimporter.__dict__.get("invalidate_caches") is before


def test_the_worker_socket_is_found_up_the_call_stack(loopback_pair):
    def daemon_worker(sock):  # stands in for pyspark.daemon.worker(sock, authenticated)
        return task()

    def task():
        return workertune.find_worker_socket(sys._getframe())

    client, _ = loopback_pair
    assert daemon_worker(client) is client
    assert task() is None  # no socket anywhere up the stack: nothing to tune


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_every_full_collection_puts_the_socket_back_in_quick_ack_mode(loopback_pair):
    client, _ = loopback_pair
    callbacks = list(gc.callbacks)
    try:
        assert workertune.quick_acks_between_tasks(client) is True
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # delayed ACKs again
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
        gc.collect(0)  # a young collection is not the daemon's between-task collect
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
        gc.collect()
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    finally:
        gc.callbacks[:] = callbacks


@pytest.mark.spark
def test_a_real_pyspark_worker_gets_every_fix(spark, config):
    """Guards the pieces that lean on PySpark's internals (the daemon's ``sock``)."""

    def report_tuning(batches):  # defined here: a test module is not importable in workers
        from halo_lrg.spark.job import _count_partition

        # The job's own partition function installs the tuning when asked; run it on no files.
        list(_count_partition(iter(()), [], config, None, None, tune_workers=True,
                              raise_failures=False))
        tuning = workertune.install()
        for _ in batches:
            pass
        yield pd.DataFrame({"pid": [os.getpid()], "zip": [tuning.lazy_zip_invalidation],
                            "acks": [tuning.quick_acks], "frozen": [tuning.frozen_imports],
                            "frozen_objects": [gc.get_freeze_count()]})

    rows = (spark.range(4, numPartitions=4)
            .mapInPandas(report_tuning,
                         "pid long, zip boolean, acks boolean, frozen boolean, "
                         "frozen_objects long")
            .toPandas())
    assert os.getpid() not in set(rows["pid"])
    assert rows["zip"].tolist() == [workertune.zip_invalidation_is_eager()] * 4
    assert rows["acks"].tolist() == [hasattr(socket, "TCP_QUICKACK")] * 4
    assert rows["frozen"].all() and (rows["frozen_objects"] > 10_000).all()
