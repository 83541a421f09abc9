"""The identifier systems a column may declare (`identifier:` in schemas/), and what a valid value looks like.

A declaration naming a system that is not here is refused when it is loaded: a misspelt system would
otherwise silently skip its check. Systems whose values are free text (e.g. organism names) have no
pattern; they are still recorded, for the readiness scorecard and the documentation.

A column whose cells list several identifiers (GEO platform annotations write `DDR1 /// MIR4640`) declares
its `separator`; every listed identifier must then be valid.
"""

from __future__ import annotations

import re

PATTERNS: dict[str, str | None] = {
    "ensembl.gene": r"ENSG\d{11}",
    "ensembl.transcript": r"ENST\d{11}",
    "hgnc.symbol": r"[A-Za-z0-9][A-Za-z0-9._@-]*",
    "ncbi.gene": r"\d+",
    "ncbi.taxon": r"\d+",
    "ncbi.taxon_name": None,
    "geo.gsm": r"GSM\d+",
    "geo.gse": r"GSE\d+",
    "geo.gpl": r"GPL\d+",
    "geo.gds": r"GDS\d+",
    "geo.accession": r"G(?:SM|SE|PL|DS)\d+",
    "tcga.barcode": r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}(?:-\d{2}[A-Z]?(?:-\d{2}[A-Z]?(?:-[A-Z0-9]{4}-\d{2})?)?)?",
    "tcga.participant": r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}",
    # A barcode valid for its length: a sample is the participant, its type and (16 characters) its vial;
    # an aliquot (28) adds portion, analyte, plate and centre.
    "tcga.sample": r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-\d{2}[A-Z]?",
    "tcga.aliquot": r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-\d{2}[A-Z]-\d{2}[A-Z]-[A-Z0-9]{4}-\d{2}",
    "gdc.uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "dbsnp.rsid": r"rs\d+",
    "pubmed": r"\d+",
}

SYSTEMS = frozenset(PATTERNS)


def regex(system: str, separator: str | None = None) -> str | None:
    """The anchored regular expression (Java and Python alike) a whole cell must match, or None if free text."""
    pattern = PATTERNS[system]
    if pattern is None:
        return None
    if separator is None:
        return f"^{pattern}$"
    sep = re.escape(separator.strip())
    return rf"^{pattern}(?:\s*{sep}\s*{pattern})*$"
