"""Pure transforms from parsed GEO blocks (one row per block, attributes as a list) to the silver and gold rows.

Input frames have the columns of `soft.ENTITY_SCHEMA`, `soft.EXPRESSION_SCHEMA` and `soft.PROBE_SCHEMA`.
Everything here is native Spark (higher-order functions on the attribute lists), so it runs on the
executors and is tested on tiny frames.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# Spellings of the same characteristic seen across GEO submissions → one key. Only spellings of one
# concept, never a guess that two concepts are the same.
KEY_SPELLINGS = {
    "gender": "sex",
    "disease status": "disease state",
    "diseasestate": "disease state",
    "disease_state": "disease state",
    "celltype": "cell type",
    "cell-type": "cell type",
    "cell line name": "cell line",
    "cellline": "cell line",
    "tissue type": "tissue",
    "tumour": "tumor",
    "tumour type": "tumor type",
    "tumour stage": "tumor stage",
    "tumour grade": "tumor grade",
    "age (years)": "age",
    "age (yrs)": "age",
    "age(years)": "age",
    "age in years": "age",
    "genotype/variation": "genotype",
    "time point": "time",
    "timepoint": "time",
    "treatment group": "treatment",
    "treated with": "treatment",
    "strain background": "strain",
    "organism part": "tissue",
}
NO_KEY = "characteristic"  # a characteristics line without `key:`
DATE_FORMAT = "MMM d yyyy"  # `Oct 23 2017`

SAMPLE_TYPED = (
    "title",
    "geo_accession",
    "type",
    "status",
    "submission_date",
    "last_update_date",
    "channel_count",
    "description",
    "platform_id",
    "series_id",
    "data_row_count",
    *(
        f"{name}_ch{channel}"
        for channel in (1, 2)
        for name in ("source_name", "organism", "molecule", "label")
    ),
    "characteristics_ch1",
    "characteristics_ch2",
)
SERIES_TYPED = (
    "title",
    "geo_accession",
    "summary",
    "description",
    "overall_design",
    "type",
    "pubmed_id",
    "status",
    "submission_date",
    "last_update_date",
    "update_date",
    "platform_id",
    "platform",
    "sample_id",
)
PLATFORM_TYPED = (
    "title",
    "geo_accession",
    "technology",
    "distribution",
    "organism",
    "taxid",
    "manufacturer",
    "status",
    "submission_date",
    "last_update_date",
)


def values_of(key: str, attributes: str = "attributes") -> Column:
    """Non-null values of every attribute named `key`, in file order."""
    matching = F.filter(F.col(attributes), lambda a: (a["key"] == key) & a["value"].isNotNull())
    return F.transform(matching, lambda a: a["value"])


def first_of(key: str) -> Column:
    return F.get(values_of(key), 0)


def joined(key: str, separator: str = "\n") -> Column:
    values = values_of(key)
    return F.when(F.size(values) > 0, F.array_join(values, separator))


def other_attributes(typed: tuple[str, ...]) -> Column:
    """`map<string,array<string>>` of every attribute not given its own column (empty values left out)."""
    rest = F.filter(
        "attributes", lambda a: ~a["key"].isin(*typed) & a["value"].isNotNull() & (F.trim(a["value"]) != "")
    )
    keys = F.array_distinct(F.transform(rest, lambda a: a["key"]))
    values = F.transform(
        keys, lambda k: F.transform(F.filter(rest, lambda a: a["key"] == k), lambda a: a["value"])
    )
    return F.map_from_arrays(keys, values)


def columns_map() -> Column:
    """#COL descriptions → map; a column described twice keeps its first non-empty description."""
    keys = F.array_distinct(F.transform("columns", lambda c: c["key"]))
    values = F.transform(
        keys,
        lambda k: F.get(
            F.transform(
                F.filter("columns", lambda c: (c["key"] == k) & c["value"].isNotNull()), lambda c: c["value"]
            ),
            0,
        ),
    )
    return F.when(F.size("columns") > 0, F.map_from_arrays(keys, values))


def geo_date(column: Column) -> Column:
    return F.to_date(F.try_to_timestamp(F.regexp_replace(column, r"\s+", " "), F.lit(DATE_FORMAT)))


def normalise_key(key: Column) -> Column:
    """Lower case, trimmed, runs of blanks and underscores as one space, then one spelling per concept."""
    cleaned = F.regexp_replace(F.lower(F.trim(key)), r"[\s_]+", " ")
    spellings = F.create_map(*[F.lit(x) for pair in KEY_SPELLINGS.items() for x in pair])
    cleaned = F.when(cleaned == "", F.lit(NO_KEY)).otherwise(cleaned)
    return F.coalesce(F.try_element_at(spellings, cleaned), cleaned)


def characteristics(raw: Column) -> Column:
    """`["Age: 70", "tissue: kidney", "tissue: cortex"]` → `{age: 70, tissue: kidney; cortex}`."""

    def pair(line: Column) -> Column:
        has_key = F.instr(line, ":") > 0
        return F.struct(
            F.when(has_key, normalise_key(F.substring_index(line, ":", 1)))
            .otherwise(F.lit(NO_KEY))
            .alias("key"),
            F.when(has_key, F.nullif(F.trim(F.regexp_extract(line, r"^[^:]*:(.*)$", 1)), F.lit("")))
            .otherwise(F.trim(line))
            .alias("value"),
        )

    pairs = F.transform(raw, pair)
    keys = F.array_distinct(F.transform(pairs, lambda p: p["key"]))
    values = F.transform(
        keys,
        lambda k: F.nullif(
            F.array_join(F.transform(F.filter(pairs, lambda p: p["key"] == k), lambda p: p["value"]), "; "),
            F.lit(""),
        ),
    )
    return F.when(F.size(raw) > 0, F.map_from_arrays(keys, values))


def _split_ids(values: Column) -> Column:
    """Series matrices list ids space-separated in one cell; SOFT files one per line (names may hold spaces)."""
    split = F.flatten(F.transform(values, lambda v: F.split(F.trim(v), r"\s+")))
    listed = F.when(F.col("file_format") == "matrix", split).otherwise(
        F.transform(values, lambda v: F.trim(v))
    )
    return F.filter(listed, lambda v: v != "")


def prefer_one(frame: DataFrame, key: list[str]) -> DataFrame:
    """One row per key when several files describe the same entity: SOFT over matrix, then the row with
    the most attributes, then the first file by path."""
    order = Window.partitionBy(*key).orderBy(
        (F.col("file_format") == "soft").desc(), F.size("attributes").desc(), F.col("source_file")
    )
    return frame.withColumn("_rank", F.row_number().over(order)).filter(F.col("_rank") == 1).drop("_rank")


def series_rows(entities: DataFrame) -> DataFrame:
    blocks = entities.filter(F.col("kind").isin("SERIES", "DATASET") & (F.col("accession") != ""))
    file_samples = (
        entities.filter(F.col("kind") == "SAMPLE")
        .groupBy("source_file")
        .agg(F.sort_array(F.collect_set("accession")).alias("file_samples"))
    )
    listed = _split_ids(values_of("sample_id"))
    rows = blocks.join(file_samples, on="source_file", how="left").select(
        F.col("accession").alias("gse_id"),
        first_of("title").alias("title"),
        F.coalesce(joined("summary"), joined("description")).alias("summary"),
        joined("overall_design").alias("overall_design"),
        values_of("type").alias("series_types"),
        values_of("pubmed_id").alias("pubmed_ids"),
        first_of("status").alias("status"),
        geo_date(first_of("submission_date")).alias("submission_date"),
        geo_date(F.coalesce(first_of("last_update_date"), first_of("update_date"))).alias("last_update_date"),
        F.array_distinct(F.concat(_split_ids(values_of("platform_id")), values_of("platform"))).alias(
            "platform_ids"
        ),
        F.when(F.size(listed) > 0, listed).otherwise(F.col("file_samples")).alias("sample_ids"),
        other_attributes(SERIES_TYPED).alias("attributes"),
        "file_format",
        "source_file",
    )
    return prefer_one(rows, ["gse_id"])


def platform_rows(entities: DataFrame) -> DataFrame:
    rows = entities.filter(F.col("kind") == "PLATFORM").select(
        F.col("accession").alias("gpl_id"),
        first_of("title").alias("title"),
        first_of("technology").alias("technology"),
        first_of("distribution").alias("distribution"),
        joined("organism", "; ").alias("organism"),
        joined("taxid", "; ").alias("taxid"),
        first_of("manufacturer").alias("manufacturer"),
        first_of("status").alias("status"),
        geo_date(first_of("submission_date")).alias("submission_date"),
        geo_date(first_of("last_update_date")).alias("last_update_date"),
        F.col("table_rows").alias("data_row_count"),
        columns_map().alias("table_columns"),
        other_attributes(PLATFORM_TYPED + ("data_row_count",)).alias("attributes"),
        "file_format",
        "source_file",
    )
    return prefer_one(rows, ["gpl_id"]).drop("file_format")


def sample_rows(entities: DataFrame) -> DataFrame:
    file_series = F.when(
        F.col("file_accession").isNotNull() & ~F.col("file_accession").startswith("GDS"),
        F.array(F.col("file_accession")),
    ).otherwise(F.array().cast("array<string>"))
    channels = []
    for channel in (1, 2):
        raw = values_of(f"characteristics_ch{channel}")
        channels += [
            first_of(f"source_name_ch{channel}").alias(f"source_name_ch{channel}"),
            first_of(f"organism_ch{channel}").alias(f"organism_ch{channel}"),
            first_of(f"molecule_ch{channel}").alias(f"molecule_ch{channel}"),
            first_of(f"label_ch{channel}").alias(f"label_ch{channel}"),
            characteristics(raw).alias(f"characteristics_ch{channel}"),
            F.when(F.size(raw) > 0, raw).alias(f"characteristics_ch{channel}_raw"),
        ]
    rows = entities.filter(F.col("kind") == "SAMPLE").select(
        F.col("accession").alias("gsm_id"),
        F.array_distinct(F.concat(values_of("series_id"), file_series)).alias("gse_ids"),
        first_of("platform_id").alias("gpl_id"),
        first_of("title").alias("title"),
        first_of("type").alias("sample_type"),
        first_of("status").alias("status"),
        geo_date(first_of("submission_date")).alias("submission_date"),
        geo_date(first_of("last_update_date")).alias("last_update_date"),
        F.coalesce(first_of("channel_count").try_cast("int"), F.lit(1)).alias("channel_count"),
        *channels,
        joined("description").alias("description"),
        F.col("table_rows").alias("data_row_count"),
        columns_map().alias("table_columns"),
        other_attributes(SAMPLE_TYPED).alias("attributes"),
        "file_format",
        "source_file",
    )
    return prefer_one(rows, ["gsm_id"])


def file_accessions(entities: DataFrame) -> DataFrame:
    """source_file → the GSE/GDS the file describes (null for a lone GSM or GPL file)."""
    return entities.groupBy("source_file").agg(F.max("file_accession").alias("file_accession"))


def expression_rows(values: DataFrame, accessions: DataFrame) -> DataFrame:
    return values.join(F.broadcast(accessions), on="source_file", how="left").select(
        F.coalesce("file_accession", "gsm_id").alias("source_accession"),
        "gsm_id",
        "gpl_id",
        "probe_id",
        "value",
        "other_values",
        "source_file",
    )


def probe_rows(probes: DataFrame) -> DataFrame:
    rows = probes.filter(F.col("probe_id").isNotNull())
    order = Window.partitionBy("gpl_id", "probe_id").orderBy(F.col("source_file"))
    return rows.withColumn("_rank", F.row_number().over(order)).filter(F.col("_rank") == 1).drop("_rank")


def problem_rows(entities: DataFrame) -> DataFrame:
    return entities.filter(F.col("kind") == "problem").select(
        "table_name", "source_file", "line_number", "record", "reason"
    )


def gene_rows(expression: DataFrame, probes: DataFrame) -> DataFrame:
    """Probe values → one value per (sample, gene): the mean of the probes annotated with exactly one gene."""
    annotated = probes.filter(
        F.col("gene_symbol").isNotNull()
        & ~F.col("gene_symbol").contains("///")
        & (F.trim("gene_symbol") != "")
    ).select(
        "gpl_id",
        "probe_id",
        F.trim("gene_symbol").alias("gene_symbol"),
        F.nullif(F.trim(F.substring_index("entrez_id", "///", 1)), F.lit("")).alias("entrez_id"),
    )
    joined_rows = expression.filter(F.col("value").isNotNull()).join(
        annotated, on=["gpl_id", "probe_id"], how="inner"
    )
    return joined_rows.groupBy("gsm_id", "gene_symbol").agg(
        F.min("entrez_id").alias("entrez_id"),
        F.min("gpl_id").alias("gpl_id"),
        F.avg("value").alias("value"),
        F.count("value").cast("int").alias("probe_count"),
        F.min("source_file").alias("source_file"),
    )
