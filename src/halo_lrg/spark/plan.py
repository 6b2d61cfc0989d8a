"""Which task reads what: files split into row ranges when big, packed together when small.

Spark pays a fixed cost per task (scheduling, a Python worker round trip, the task's result),
~30-130 ms on a local master: nothing next to a DR10 sweep's tens of seconds, most of the run
for an index of small files. And one task per file leaves a run of a few huge files (random
catalogues: tens of millions of rows each) on a few cores. So the run plans *pieces* (a file,
or one of ``parts`` near-equal row ranges of it, :class:`~halo_lrg.fits.layout.RowSlice`) and
*tasks* (pieces read one after another by one task):

* a file larger than ``split_bytes`` (0: never) becomes ``ceil(size / split_bytes)`` pieces,
  each read by its own task from its own byte range;
* pieces smaller than the target are packed, in the order given (largest first), into tasks
  of up to the target's bytes; the target is ``pack_bytes`` (0: never pack), lowered so the
  run keeps at least ``tasks_per_core`` tasks per core where the pieces allow it, so packing
  never takes a core's work away;
* a file of unknown size is a task of its own.

Sizes are what the index planning measured (stat or HEAD); row counts are only learnt by the
task that opens a piece, which is why a split is by fractions of the rows, not row numbers.
Pure Python: the planner needs no Spark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from halo_lrg.fits.layout import RowSlice

#: Every row of a file.
WHOLE = RowSlice()


@dataclass(frozen=True)
class Piece:
    """What one task reads of one file: ``rows`` of file ``file`` (an index into the run's
    list of files); ``bytes``: its share of the file's size (None: size unknown)."""

    file: int
    rows: RowSlice = WHOLE
    bytes: Optional[int] = None


def pieces_of(size: Optional[int], split_bytes: int) -> int:
    """How many row ranges a file of ``size`` bytes is read in."""
    if size is None or split_bytes <= 0 or size <= split_bytes:
        return 1
    return math.ceil(size / split_bytes)


def split_files(sizes: Sequence[Optional[int]], split_bytes: int = 0,
                splittable: Optional[Sequence[bool]] = None) -> list[Piece]:
    """The pieces of files of ``sizes``, in file order: a file larger than ``split_bytes``
    (and ``splittable``, by default every file) is cut in row ranges, the rest are whole."""
    if split_bytes < 0:
        raise ValueError(f"split_bytes must be >= 0, got {split_bytes}")
    pieces: list[Piece] = []
    for index, size in enumerate(sizes):
        parts = pieces_of(size, split_bytes) if splittable is None or splittable[index] else 1
        pieces += [Piece(index, RowSlice(k, parts), None if size is None else
                         size * (k + 1) // parts - size * k // parts) for k in range(parts)]
    return pieces


def pack_pieces(pieces: Sequence[Piece], pack_bytes: int = 0, cores: int = 1,
                tasks_per_core: int = 2) -> list[tuple[Piece, ...]]:
    """``pieces`` as tasks, each piece in exactly one: pieces smaller than the target are
    read together, consecutive ones up to the target's bytes a task (see the module's doc);
    a task of one piece comes where the piece is, a packed one once it is full."""
    if pack_bytes < 0 or cores < 1 or tasks_per_core < 1:
        raise ValueError(f"cannot pack with pack_bytes={pack_bytes}, cores={cores}, "
                         f"tasks_per_core={tasks_per_core}")
    known = sum(p.bytes or 0 for p in pieces)
    target = min(pack_bytes, known // (cores * tasks_per_core)) if pack_bytes else 0
    tasks: list[tuple[Piece, ...]] = []
    packed: list[Piece] = []
    packed_bytes = 0
    for piece in pieces:
        if piece.bytes is None or piece.bytes >= target:
            tasks.append((piece,))
            continue
        if packed and packed_bytes + piece.bytes > target:
            tasks.append(tuple(packed))
            packed, packed_bytes = [], 0
        packed.append(piece)
        packed_bytes += piece.bytes
    if packed:
        tasks.append(tuple(packed))
    return tasks


def plan_tasks(sizes: Sequence[Optional[int]], *, split_bytes: int = 0, pack_bytes: int = 0,
               cores: int = 1, tasks_per_core: int = 2) -> list[tuple[Piece, ...]]:
    """The tasks reading files of ``sizes`` (in the order given, largest first for balance),
    as tuples of pieces; every row of every file is in exactly one piece."""
    return pack_pieces(split_files(sizes, split_bytes), pack_bytes, cores, tasks_per_core)
