"""The spool's byte accounting, pure (issue 11 item 4): what counts, what the WAL and the reserve
take from max_bytes, when to shed and how much."""

from __future__ import annotations

from probe_agent.spool_space import MAX_WAL_PAGES, MIN_WAL_PAGES, SpoolBudget, SpoolUsage, rows_to_drop

PAGE = 4096
MIB = 1 << 20


def _usage(pages: int, free_pages: int = 0, wal: int = 0, disk_free: int = 10 << 30) -> SpoolUsage:
    return SpoolUsage(
        page_size=PAGE, page_count=pages, freelist_count=free_pages, wal_bytes=wal, disk_free=disk_free
    )


def test_free_pages_are_not_in_use_but_are_in_the_file() -> None:
    usage = _usage(pages=1000, free_pages=400, wal=64 * PAGE)
    assert usage.data_bytes == 600 * PAGE
    assert usage.file_bytes == 1064 * PAGE
    assert usage.room == (10 << 30) + 400 * PAGE + 64 * PAGE


def test_wal_and_reserve_scale_with_the_smaller_of_max_bytes_and_the_disk() -> None:
    small = SpoolBudget.plan(max_bytes=512 * MIB, disk_total=2 * MIB, page_size=PAGE)
    assert small.wal_pages == MIN_WAL_PAGES and small.reserve_bytes == small.wal_bytes == 64 << 10
    assert SpoolBudget.plan(512 * MIB, 100 << 30, PAGE).wal_pages == MAX_WAL_PAGES
    mid = SpoolBudget.plan(64 * MIB, 100 << 30, PAGE)
    assert mid.wal_pages == 64 * MIB // 32 // PAGE
    # What pages in use may reach: max_bytes less twice the WAL and the reserve.
    assert mid.data_bytes == 64 * MIB - 3 * mid.wal_bytes


def test_excess_is_over_budget_or_short_of_room_whichever_is_worse() -> None:
    budget = SpoolBudget.plan(max_bytes=4 * MIB, disk_total=100 << 30, page_size=PAGE)
    limit_pages = budget.data_bytes // PAGE
    assert budget.excess(_usage(pages=limit_pages)) == 0
    assert budget.excess(_usage(pages=limit_pages + 10)) == 10 * PAGE
    # Free pages are reused: a big file with room inside it is not over budget.
    assert budget.excess(_usage(pages=limit_pages + 500, free_pages=500)) == 0
    # A disk someone else filled: under budget, yet short of the WAL's headroom.
    assert budget.excess(_usage(pages=100, disk_free=PAGE)) == budget.disk_headroom - PAGE
    assert budget.excess(_usage(pages=100, free_pages=50, disk_free=PAGE)) == budget.disk_headroom - 51 * PAGE


def test_rows_to_drop_frees_the_excess_at_average_size_plus_a_margin() -> None:
    assert rows_to_drop(0, 1000 * PAGE, 5000) == 0
    assert rows_to_drop(PAGE, 0, 0) == 0
    # 400 bytes a row on average; 40,000 bytes over: 100 rows, plus 5 % of the data (512 rows).
    assert rows_to_drop(40_000, 4_096_000, 10_240) == 100 + 512
    assert rows_to_drop(10 * 4_096_000, 4_096_000, 10_240) == 10_240  # never more than there is
