"""TCGA/GDC: MAF mutations, STAR/HTSeq gene counts, clinical data and sample mappings into Delta."""

from lakehouse.sources.tcga.ingest import TcgaIngest, ingest_tcga

__all__ = ["TcgaIngest", "ingest_tcga"]
