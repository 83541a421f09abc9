"""gnomAD sites VCFs → typed Delta tables (silver variants, gold population frequencies, meta headers)."""

from lakehouse.sources.gnomad.land import land_file, land_gnomad

__all__ = ["land_file", "land_gnomad"]
