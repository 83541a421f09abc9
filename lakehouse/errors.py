"""Errors the lakehouse raises on purpose.

Each carries a message meant for a person: what went wrong, where (table, column, file, line) and what
to do. The CLI prints `str(error)` as one line and exits non-zero.
"""

import re


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


def describe_error(exc: BaseException) -> str:
    """One line for a person: our own errors as they are, Spark's without the JVM stack."""
    if isinstance(exc, LakehouseError):
        return str(exc)
    try:
        from py4j.protocol import Py4JJavaError
        from pyspark.errors.exceptions.base import PySparkException
    except ImportError:  # pragma: no cover - pyspark is a hard dependency
        PySparkException = Py4JJavaError = ()
    if isinstance(exc, PySparkException):
        # An error raised in a Python worker (a parser in mapInArrow) reaches us as a PythonException whose
        # first line is a generic banner: the worker's own last error line is the one that says what failed.
        raised = re.findall(
            r"^(?:lakehouse\.errors\.\w+|\w*(?:Error|Exception)): (.+)$", str(exc), re.MULTILINE
        )
        if "Python worker" in str(exc).strip().split("\n", 1)[0] and raised:
            return raised[-1]
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        # "[TABLE_OR_VIEW_NOT_FOUND] The table or view `a`.`b` cannot be found. Verify ... SQLSTATE: 42P01"
        head, _, _ = message.partition(" Verify the spelling")
        return _with_root_cause(head.split(" SQLSTATE:")[0].rstrip("; "), getattr(exc, "_origin", None))
    if isinstance(exc, Py4JJavaError):
        return _with_root_cause(str(exc.java_exception.toString()).splitlines()[0], exc.java_exception)
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _with_root_cause(line: str, java_exception) -> str:
    """Append the innermost JVM cause (e.g. `java.io.IOException: No space left on device`), which Spark's
    own message ("Task failed while writing rows") leaves out."""
    cause, seen = java_exception, 0
    try:
        while cause is not None and cause.getCause() is not None and seen < 20:
            cause, seen = cause.getCause(), seen + 1
        root = str(cause.toString()).splitlines()[0] if cause is not None and seen else ""
    except Exception:  # noqa: BLE001 - the JVM may be gone; the line is still worth printing
        root = ""
    return f"{line} (caused by {root})" if root and root not in line else line
