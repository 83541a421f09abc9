"""spark-submit entry point: `spark-submit jobs/ingest_geo.py PATH_OR_ACCESSION [...] [--shards N]`."""

import argparse
import sys

from lakehouse.cli import describe_error
from lakehouse.settings import Settings
from lakehouse.sources.geo.ingest import ingest_geo
from lakehouse.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "targets", nargs="+", help="GEO SOFT / series-matrix files or GSE/GSM/GPL/GDS accessions"
    )
    parser.add_argument("--shards", type=int, default=None, help="tasks per big file")
    args = parser.parse_args(argv)
    settings = Settings.load()
    try:
        spark = get_spark(settings, app_name="lakehouse ingest geo")
        result = ingest_geo(spark, settings, args.targets, shards=args.shards)
    except Exception as exc:  # noqa: BLE001 - one readable line, non-zero exit
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
