"""spark-submit entry point: `spark-submit jobs/ingest_gnomad.py PATH_OR_URL... [--release v4.1] [--dataset genomes]`."""

import argparse
import sys

from lakehouse.cli import describe_error
from lakehouse.settings import Settings
from lakehouse.sources.gnomad import land_gnomad
from lakehouse.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", help="VCF files (plain, gzip or BGZF) or URLs")
    parser.add_argument("--release", help="gnomAD release (default: from the file name)")
    parser.add_argument("--dataset", choices=["genomes", "exomes", "joint"])
    parser.add_argument("--force", action="store_true", help="land again files already landed")
    args = parser.parse_args(argv)
    settings = Settings.load()
    try:
        spark = get_spark(settings, app_name="lakehouse ingest gnomad")
        landed = land_gnomad(spark, settings, args.paths, args.release, args.dataset, args.force)
    except Exception as exc:  # noqa: BLE001 - one readable line, non-zero exit
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    for item in landed:
        print(item.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
