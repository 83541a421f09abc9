from pathlib import Path

import pytest
import yaml

from lakehouse.errors import ConfigError
from lakehouse.schemas import PROVENANCE_COLUMNS, load_declarations, parse_declaration
from lakehouse.settings import PACKAGED_SCHEMAS

EXAMPLE = {
    "name": "silver.example_variants",
    "description": "it's an example",
    "licence": "CC0-1.0",
    "primary_key": ["contig", "pos"],
    "partition_by": ["contig"],
    "properties": {"delta.enableChangeDataFeed": "true"},
    "columns": [
        {"name": "contig", "type": "string", "nullable": False, "description": "Contig, e.g. chr1"},
        {"name": "pos", "type": "bigint", "nullable": False, "description": "1-based position"},
        {"name": "filters", "type": "array<string>", "description": "FILTER values"},
    ],
}


def test_declaration_derives_ddl_with_comments_keys_partitions_and_provenance():
    decl = parse_declaration(EXAMPLE)
    assert decl.layer == "silver"
    assert decl.column_names[:3] == ["contig", "pos", "filters"]
    assert decl.column_names[3:] == [c["name"] for c in PROVENANCE_COLUMNS]
    ddl = decl.create_ddl()
    assert "CREATE TABLE IF NOT EXISTS silver.example_variants" in ddl
    assert "`pos` bigint NOT NULL COMMENT '1-based position'" in ddl
    assert "`filters` array<string> COMMENT 'FILTER values'" in ddl
    assert "PARTITIONED BY (contig)" in ddl
    assert "COMMENT 'it\\'s an example'" in ddl
    assert "'lakehouse.primary_key' = 'contig,pos'" in ddl
    assert "'delta.enableChangeDataFeed' = 'true'" in ddl
    schema = decl.spark_schema()
    assert schema["pos"].dataType.simpleString() == "bigint" and not schema["pos"].nullable


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "nolayer"}, "name must be <layer>.<table>"),
        ({"primary_key": ["contig", "nope"]}, r"primary_key names undeclared columns \['nope'\]"),
        ({"columns": [{"name": "x", "type": "strng"}]}, "ex.yaml"),
        ({"columns": [{"name": "x", "type": "string", "colour": "red"}]}, r"unknown keys \['colour'\]"),
        ({"migrations": [{"version": 3, "add_columns": ["pos"]}]}, "numbered 2, 3"),
    ],
)
def test_bad_declarations_are_refused_naming_the_file(change, message):
    data = {**EXAMPLE, **change}
    if "columns" in change:
        data["primary_key"], data["partition_by"] = [], []
    with pytest.raises(ConfigError, match=message):
        parse_declaration(data, Path("schemas/silver/ex.yaml"))


def test_file_must_be_named_after_its_table(tmp_path):
    (tmp_path / "silver").mkdir()
    (tmp_path / "silver" / "wrong_name.yaml").write_text(yaml.safe_dump(EXAMPLE))
    with pytest.raises(ConfigError, match="file must be silver/example_variants.yaml"):
        load_declarations(tmp_path)


def test_project_declarations_all_load():
    declarations = load_declarations(PACKAGED_SCHEMAS)
    assert {"meta.ingest_runs", "quality.quarantine", "bronze.demo_measurements"} <= set(declarations)
    for decl in declarations.values():
        assert decl.description, f"{decl.name} has no description"
        assert all(column.description for column in decl.columns), f"{decl.name} has undescribed columns"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bigint", "bigint"),
        ("decimal(10, 2)", "decimal(10,2)"),
        (
            "array<struct<path:string,sha256:string,size_bytes:bigint>>",
            "array<struct<path:string,sha256:string,size_bytes:bigint>>",
        ),
        ("map<string, array<double>>", "map<string,array<double>>"),
    ],
)
def test_spark_types_parse_without_a_jvm(text, expected):
    from lakehouse.types import parse_type

    assert parse_type(text).simpleString() == expected


@pytest.mark.parametrize("text", ["strng", "array<int", "map<string>", "int int", "struct<a int>"])
def test_unknown_types_are_refused(text):
    from lakehouse.types import parse_type

    with pytest.raises(ValueError, match="unknown Spark type"):
        parse_type(text)
