"""spark-submit entry point for the main job: `spark-submit jobs/main.py [--stage NAME ...]`."""

import argparse
import sys

from lakehouse.cli import describe_error
from lakehouse.pipeline import run_main
from lakehouse.settings import Settings
from lakehouse.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    args = parser.parse_args(argv)
    settings = Settings.load()
    try:
        spark = get_spark(settings, app_name="lakehouse main")
        ran = run_main(spark, settings, args.stage)
    except Exception as exc:  # noqa: BLE001 - one readable line, non-zero exit
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    print(f"main job: ran {', '.join(ran)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
