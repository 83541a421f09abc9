"""Work the driver knows item by item (files, byte ranges of a file) spread over Spark tasks: one task per
core, each with about as many bytes, and no shuffle.

`repartition(n)` and `repartition(n, key)` do not deal a few rows evenly: two files on two cores went to one
task, and of 12 byte ranges hashed into 12 partitions, two tasks got four each and six got none. A frame
made from a Python list, however, is cut into `defaultParallelism` runs of rows of equal length (within
one), in order. So the items are dealt on the driver (`deal`) and laid out share after share, each share
padded with all-null rows to the length of the longest: every run is then exactly one share.
"""

from __future__ import annotations

import heapq

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from lakehouse.spark import default_parallelism


def deal(sizes: list[int], tasks: int) -> list[list[int]]:
    """Indexes of `sizes` dealt into at most `tasks` shares of about equal total size: largest first, each
    to the lightest share so far (each share in index order)."""
    lightest = [(0, 0, share) for share in range(min(tasks, len(sizes)))]  # (load, items, share)
    shares: list[list[int]] = [[] for _ in lightest]
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        load, count, share = heapq.heappop(lightest)
        shares[share].append(index)
        heapq.heappush(lightest, (load + sizes[index], count + 1, share))
    return [sorted(share) for share in shares]


def spread(spark: SparkSession, rows: list[tuple], ddl: str, sizes: list[int]) -> DataFrame:
    """A frame of `rows` (schema `ddl`; `sizes[i]` the bytes row i stands for) with one partition per core,
    each holding one share of `deal`, padded with rows that are all null: a task skips those."""
    shares = deal(sizes, default_parallelism(spark))
    # Fewer items than cores: one each, and the list's runs hold at most one row, so nothing is padded (a
    # padding-only task would still start a Python worker).
    longest = max((len(share) for share in shares), default=0)
    empty = (None,) * len(StructType.fromDDL(ddl).names)
    layout = [row for share in shares for row in [rows[i] for i in share] + [empty] * (longest - len(share))]
    return spark.createDataFrame(layout, ddl)
