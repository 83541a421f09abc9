"""TCGA/GDC: MAF mutations, STAR/HTSeq gene counts, clinical data and sample mappings into Delta."""

from lakehouse.sources.tcga.ingest import ingest_tcga

__all__ = ["ingest_tcga"]
