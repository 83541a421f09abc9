"""Analysis-ready matrices: gold long tables exported to AnnData-layout Zarr stores with Dask."""
