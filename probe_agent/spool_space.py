"""How much disk the spool may use and how many results to drop to stay within it.

Pure arithmetic, no I/O: the spool measures (SQLite page counts, the WAL's size, the
filesystem's free space) and asks here what to do.

Why pages in use and not the file size: SQLite never shrinks a file by itself; pages freed by
an ack go on a free list and are reused by the next inserts. So the database file grows only
while pages in use exceed its size, and bounding the pages in use bounds the file. The spool
also runs incremental vacuum after shedding, so a disk it filled gets its space back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The WAL is checkpointed when it holds this share of the budget (within the page bounds
# below); `journal_size_limit` keeps its file at that size. The reserve file, released when
# the disk is full so a delete and a checkpoint can still be written, is the same size.
WAL_SHARE = 32
MIN_WAL_PAGES = 16
MAX_WAL_PAGES = 1000
# Shed a little more than the excess, so a full spool drops in batches, not on every insert.
SHED_EXTRA = 0.05
MIN_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class SpoolUsage:
    """What the spool occupies now."""

    page_size: int
    page_count: int
    freelist_count: int
    wal_bytes: int
    disk_free: int  # bytes the filesystem still offers this process

    @property
    def data_bytes(self) -> int:
        """Bytes of database pages holding results (free pages are reused, so not counted)."""
        return max(0, self.page_count - self.freelist_count) * self.page_size

    @property
    def file_bytes(self) -> int:
        return self.page_count * self.page_size + self.wal_bytes

    @property
    def room(self) -> int:
        """Bytes the spool can still write without the filesystem: free disk, free pages the
        database reuses, and the WAL file's own size (reused after each checkpoint)."""
        return self.disk_free + self.freelist_count * self.page_size + self.wal_bytes


@dataclass(frozen=True)
class SpoolBudget:
    """The byte bound of one spool, derived from `max_bytes` and the size of its filesystem."""

    max_bytes: int
    page_size: int
    wal_pages: int

    @classmethod
    def plan(cls, max_bytes: int, disk_total: int, page_size: int) -> SpoolBudget:
        bound = min(max_bytes, disk_total) if disk_total > 0 else max_bytes
        wal_pages = min(MAX_WAL_PAGES, max(MIN_WAL_PAGES, bound // WAL_SHARE // page_size))
        return cls(max_bytes=max_bytes, page_size=page_size, wal_pages=wal_pages)

    @property
    def wal_bytes(self) -> int:
        return self.wal_pages * self.page_size

    @property
    def reserve_bytes(self) -> int:
        return self.wal_bytes

    @property
    def data_bytes(self) -> int:
        """What the database's pages in use may reach: the rest of max_bytes goes to the WAL
        (twice: a checkpoint runs after the commit that crossed the threshold) and the reserve."""
        return max(self.page_size * 4, self.max_bytes - 3 * self.wal_bytes)

    @property
    def disk_headroom(self) -> int:
        """Room to keep: the WAL's size twice over (a checkpoint runs after the commit that
        crossed it), so the next writes never meet a full disk."""
        return 2 * self.wal_bytes

    def excess(self, usage: SpoolUsage) -> int:
        """Bytes to free now: over the budget, or eating into the last headroom."""
        over_budget = usage.data_bytes - self.data_bytes
        short_on_disk = self.disk_headroom - usage.room
        return max(0, over_budget, short_on_disk)


def rows_to_drop(excess: int, data_bytes: int, depth: int) -> int:
    """How many of the oldest results to drop to free `excess` bytes, at their average size."""
    if excess <= 0 or depth <= 0:
        return 0
    average = max(1.0, data_bytes / depth)
    return min(depth, math.ceil((excess + data_bytes * SHED_EXTRA) / average))
