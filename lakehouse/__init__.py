"""A multi-omics data lakehouse: GEO, TCGA/GDC and gnomAD in validated, versioned Delta tables."""

__version__ = "0.1.0"

# The lake read without a JVM (delta-rs; see lakehouse/reader.py), imported on first use: Spark's Python
# workers import this package too, and need none of it.
__all__ = ["history", "read_table", "table_path", "tables"]


def __getattr__(name: str):
    if name in __all__:
        from lakehouse import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'lakehouse' has no attribute {name!r}")
