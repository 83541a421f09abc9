"""Spreading driver-side work items over Spark tasks: one task per core, each with its share of the bytes."""

from __future__ import annotations

from lakehouse.tasks import deal, spread


def _shares(frame) -> list[list[int]]:
    return [[row["index"] for row in part if row["index"] is not None] for part in frame.rdd.glom().collect()]


def test_items_are_spread_one_share_per_core(spark):
    cores = spark.sparkContext.defaultParallelism
    assert cores == 2
    ddl = "index int, start bigint, end bigint"
    # Two equal byte ranges: one per task (`repartition(2, "index")` put both in one task).
    assert _shares(spread(spark, [(0, 0, 8), (1, 8, 16)], ddl, [8, 8])) == [[0], [1]]
    # Twelve ranges, the last one short: each task gets about half of the 91 bytes.
    sizes = [8] * 11 + [3]
    shares = _shares(spread(spark, [(i, 0, s) for i, s in enumerate(sizes)], ddl, sizes))
    assert sorted(sum(sizes[i] for i in share) for share in shares) == [43, 48]  # six 8s | five and the 3
    assert sorted(i for share in shares for i in share) == list(range(12))
    # Fewer items than cores: one task each, the other tasks get no row at all (not even padding).
    one = spread(spark, [(0, 0, 1)], ddl, [1])
    assert sorted(_shares(one)) == [[], [0]] and one.count() == 1
    assert _shares(spread(spark, [], ddl, [])) in ([], [[], []])


def test_deal_gives_the_largest_first_to_the_lightest_share():
    # 9000 | 8000, then 8000+1000 = 9000 | a tie, fewer items first: 9000+500 | 9000+400
    assert deal([9000, 8000, 1000, 500, 400], 2) == [[0, 3], [1, 2, 4]]
    assert deal([5], 4) == [[0]] and deal([], 2) == []
    assert deal([1] * 7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
