"""A multi-omics data lakehouse: GEO, TCGA/GDC and gnomAD in validated, versioned Delta tables."""

__version__ = "0.1.0"
