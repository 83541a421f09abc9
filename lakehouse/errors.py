"""Errors the lakehouse raises on purpose.

Each carries a message meant for a person: what went wrong, where (table, column, file, line) and what
to do. The CLI prints `str(error)` as one line and exits non-zero.
"""


class LakehouseError(Exception):
    """Base of every error the lakehouse raises deliberately."""


class ConfigError(LakehouseError):
    """Settings or a table declaration are invalid."""


class EnvironmentProblem(LakehouseError):
    """The machine lacks something the lakehouse needs (Java, the Delta jars)."""


class SchemaDriftError(LakehouseError):
    """A stored table no longer matches its declaration in `schemas/`."""


class DataError(LakehouseError):
    """Input data cannot be used as it is (duplicate keys, unreadable file)."""
