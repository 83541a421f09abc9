"""Generators of realistic synthetic inputs in the sources' real file formats."""
