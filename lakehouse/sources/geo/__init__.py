"""GEO: family SOFT, GSE/GSM/GPL/GDS SOFT and series matrices landed into Delta (silver and gold)."""
