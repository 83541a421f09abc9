"""Source readers: one module or package per source (GEO, TCGA/GDC, gnomAD)."""
