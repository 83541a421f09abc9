"""The main job: one ordered list of stages, each landing or deriving tables through the library.

Each source issue plugs its stage in here; `lakehouse run` and `jobs/main.py` run the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lakehouse.settings import Settings


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable  # (spark, settings) -> None


def _catalog(spark, settings: Settings) -> None:
    from lakehouse.catalog import init_catalog

    init_catalog(spark, settings)


def _demo(spark, settings: Settings) -> None:
    from lakehouse.demo import land_demo

    land_demo(spark, settings)


def _tcga(spark, settings: Settings) -> None:
    from lakehouse.sources.tcga.ingest import land_synthetic

    land_synthetic(spark, settings, cases=24, genes=60)  # enough patients for a held-out split


def _gnomad(spark, settings: Settings) -> None:
    from lakehouse.sources.gnomad.land import land_synthetic

    land_synthetic(spark, settings)


def _geo(spark, settings: Settings) -> None:
    from lakehouse.sources.geo.ingest import land_synthetic

    land_synthetic(spark, settings)


# The reference hypotheses ship inside the ml package (package data), so an installed wheel has them.
SPECS = Path(str(resources.files("ml") / "specs"))


def _experiments(spark, settings: Settings) -> None:
    """The reference experiments: each outcome, supported or not, lands in knowledge.findings."""
    from ml.experiment import ExperimentSpec, run_experiment

    for path in sorted(SPECS.glob("*.yaml")):
        run_experiment(spark, settings, ExperimentSpec.load(path))


STAGES: list[Stage] = [
    Stage("catalog", "create the layer databases and every declared table", _catalog),
    Stage("demo", "land the generated demo measurements into bronze", _demo),
    Stage("tcga", "land a small generated TCGA cohort (MAF, counts, clinical) into silver and gold", _tcga),
    Stage("gnomad", "land a small generated gnomAD v4-shaped sites VCF into silver and gold", _gnomad),
    Stage("geo", "land a small generated GEO family SOFT file into silver and gold", _geo),
    Stage(
        "experiments",
        "run the reference hypotheses (ml/specs) on the latest validated gold versions",
        _experiments,
    ),
]


def run_main(spark, settings: Settings, only: list[str] | None = None, progress=None) -> list[str]:
    """Run the stages in order (or only the named ones); returns the names run."""
    unknown = set(only or []) - {stage.name for stage in STAGES}
    if unknown:
        from lakehouse.errors import ConfigError

        raise ConfigError(f"unknown stage(s) {sorted(unknown)}; stages are {[s.name for s in STAGES]}")
    ran = []
    for stage in STAGES:
        if only and stage.name not in only:
            continue
        if progress:
            progress(stage)
        stage.run(spark, settings)
        ran.append(stage.name)
    return ran
