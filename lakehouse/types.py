"""Spark SQL type strings (`bigint`, `array<struct<a:int,b:string>>`, `decimal(10,2)`) → DataType, no JVM.

pyspark's own parser asks the JVM, but declarations are read before (or without) a SparkSession.
"""

from __future__ import annotations

import re

from pyspark.sql import types as T

_SIMPLE = {
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "byte": T.ByteType(),
    "smallint": T.ShortType(),
    "short": T.ShortType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "timestamp_ntz": T.TimestampNTZType(),
    "binary": T.BinaryType(),
}
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),:])")


def parse_type(text: str) -> T.DataType:
    tokens = _TOKEN.findall(text)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", text):
        raise ValueError(f"unknown Spark type {text!r}")
    parser = _Parser(tokens, text)
    data_type = parser.type()
    if parser.position != len(tokens):
        raise ValueError(f"unknown Spark type {text!r}")
    return data_type


class _Parser:
    def __init__(self, tokens: list[str], text: str):
        self.tokens, self.text, self.position = tokens, text, 0

    def take(self, expected: str | None = None) -> str:
        if self.position >= len(self.tokens):
            raise ValueError(f"unknown Spark type {self.text!r}: ends early")
        token = self.tokens[self.position]
        if expected is not None and token != expected:
            raise ValueError(f"unknown Spark type {self.text!r}: expected {expected!r} at {token!r}")
        self.position += 1
        return token

    def type(self) -> T.DataType:
        name = self.take().lower()
        if name in _SIMPLE:
            return _SIMPLE[name]
        if name == "decimal":
            self.take("(")
            precision = int(self.take())
            self.take(",")
            scale = int(self.take())
            self.take(")")
            return T.DecimalType(precision, scale)
        if name == "array":
            self.take("<")
            element = self.type()
            self.take(">")
            return T.ArrayType(element, True)
        if name == "map":
            self.take("<")
            key = self.type()
            self.take(",")
            value = self.type()
            self.take(">")
            return T.MapType(key, value, True)
        if name == "struct":
            self.take("<")
            fields = []
            while True:
                field_name = self.take()
                self.take(":")
                fields.append(T.StructField(field_name, self.type(), True))
                if self.take() == ">":
                    return T.StructType(fields)
        raise ValueError(f"unknown Spark type {self.text!r}: {name!r}")
