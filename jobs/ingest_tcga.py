"""spark-submit entry point: `spark-submit jobs/ingest_tcga.py PATH... [--release R]` lands GDC/TCGA files."""

import argparse
import sys

from lakehouse.cli import describe_error
from lakehouse.settings import Settings
from lakehouse.sources.tcga import ingest_tcga
from lakehouse.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", help="files or directories (kinds are told by content)")
    parser.add_argument("--release", default=None, help="GDC data release of the files")
    args = parser.parse_args(argv)
    settings = Settings.load()
    try:
        spark = get_spark(settings, app_name="lakehouse ingest tcga")
        result = ingest_tcga(spark, settings, args.paths, release=args.release)
    except Exception as exc:  # noqa: BLE001 - one readable line, non-zero exit
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
