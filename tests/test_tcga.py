"""TCGA/GDC: barcode decomposition, file kinds, parsing of the shared real files against pandas, landing."""

from __future__ import annotations

import gzip
import re
import shutil

import pandas as pd
import pyarrow as pa
import pytest
from conftest import run_status
from pyspark.sql import functions as F

from lakehouse.errors import DataError
from lakehouse.sources.tcga import counts, maf, tabular
from lakehouse.sources.tcga.barcodes import BARCODE_COLUMNS, arrow_parts, case_of, sample_of
from lakehouse.sources.tcga.formats import clean, sniff
from lakehouse.sources.tcga.parse import clinical_record, merge_case_fields
from lakehouse.sources.tcga.readers import biospecimen_xml, clinical_rows, clinical_xml

TCGA = "tcga"


def test_barcode_decomposition_at_every_length():
    barcodes = [
        "TCGA-AB-2802",  # 12
        "TCGA-AB-2802-03",  # 15
        "TCGA-A1-A0SF-01A",  # 16
        "tcga-a1-a0sk-11b-12d",  # 20, lower case
        "TCGA-A1-A0SF-01A-11D-A142-09",  # 28
        "TCGA-AB-3007-10A-01T-0736-13",
        "TCGA-XX-0001-20A-01D-A000-01",
        "TUMOR",
        None,
    ]
    parts = arrow_parts(pa.array(barcodes, pa.string()))
    assert list(parts) == list(BARCODE_COLUMNS)
    got = {raw: {k: v[n].as_py() for k, v in parts.items()} for n, raw in enumerate(barcodes)}
    assert got["TCGA-AB-2802"]["barcode_level"] == "participant"
    assert got["TCGA-AB-2802"]["case_barcode"] == "TCGA-AB-2802"
    assert got["TCGA-AB-2802"]["sample_barcode"] is None and got["TCGA-AB-2802"]["sample_type"] is None
    assert got["TCGA-AB-2802-03"]["sample_barcode"] == "TCGA-AB-2802-03"
    assert got["TCGA-AB-2802-03"]["sample_type"] == "Primary Blood Derived Cancer - Peripheral Blood"
    assert got["TCGA-AB-2802-03"]["vial"] is None
    sixteen = got["TCGA-A1-A0SF-01A"]
    assert (
        sixteen["sample_type_code"],
        sixteen["sample_type"],
        sixteen["sample_type_short"],
        sixteen["vial"],
    ) == (
        "01",
        "Primary Solid Tumor",
        "TP",
        "A",
    )
    analyte = got["tcga-a1-a0sk-11b-12d"]
    assert analyte["barcode"] == "TCGA-A1-A0SK-11B-12D"
    assert (analyte["barcode_level"], analyte["sample_type"], analyte["portion"], analyte["analyte"]) == (
        "analyte",
        "Solid Tissue Normal",
        "12",
        "D",
    )
    aliquot = got["TCGA-A1-A0SF-01A-11D-A142-09"]
    assert {
        k: aliquot[k] for k in ("project", "tss_code", "participant", "case_barcode", "sample_barcode")
    } == {
        "project": "TCGA",
        "tss_code": "A1",
        "participant": "A0SF",
        "case_barcode": "TCGA-A1-A0SF",
        "sample_barcode": "TCGA-A1-A0SF-01A",
    }
    assert (aliquot["portion"], aliquot["analyte"], aliquot["plate"], aliquot["center"]) == (
        "11",
        "D",
        "A142",
        "09",
    )
    assert aliquot["barcode_level"] == "aliquot"
    assert got["TCGA-AB-3007-10A-01T-0736-13"]["sample_type"] == "Blood Derived Normal"
    assert got["TCGA-XX-0001-20A-01D-A000-01"]["sample_type"] == "Control Analyte"
    for bad in ("TUMOR", None):
        assert got[bad]["case_barcode"] is None and got[bad]["barcode_level"] is None
    assert got["TCGA-AB-2802-03"]["barcode_level"] == "sample"
    assert got["TCGA-A1-A0SF-01A-11D-A142-09"]["sample_type_short"] == "TP"
    assert case_of("TCGA-A1-A0SF-01A-11D-A142-09") == "TCGA-A1-A0SF"
    assert sample_of("TCGA-A1-A0SF-01A-11D-A142-09") == "TCGA-A1-A0SF-01A"
    assert sample_of("TCGA-AB-2802") is None


def test_missing_value_spellings():
    for spelling in (
        "--",
        "'--",
        "NA",
        "not reported",
        "Not Reported",
        "[Not Available]",
        "[Unknown]",
        ".",
        "",
        " ",
    ):
        assert clean(spelling) is None, spelling
    assert clean("-") == "-"  # an indel allele, not a missing value
    assert clean(" Dead ") == "Dead"


def test_file_kinds_from_content(shared_data, tmp_path):
    tcga = shared_data / TCGA
    expected = {
        "maftools_tcga_laml.maf.gz": "maf",
        "vcf2maf_test_b38_output_fullcolumns.maf": "maf",
        "vcf2maf_minimalist_TCGA-BRCA_barcodes.maf.tsv": "maf",
        "gdc_rnaseq_tool_test_set_1.augmented_star_gene_counts.tsv.gz": "star_counts",
        "GenomicDataCommons_example.htseq.counts.gz": "htseq_counts",
        "onco_lnc_TCGA-LAML_nationwidechildrens.org_clinical_patient_laml.txt": "clinical_biotab",
        "maftools_tcga_laml_annot.tsv": "clinical_tsv",
        "onco_lnc_TCGA-LAML_FILE_SAMPLE_MAP_mrna.txt": "file_sample_map",
        "gdc_bcr_xml/nationwidechildrens.org_clinical.TCGA-3C-AAAU.xml": "clinical_xml",
        "gdc_bcr_xml/nationwidechildrens.org_biospecimen.TCGA-3C-AAAU.xml": "biospecimen_xml",
    }
    for name, kind in expected.items():
        assert sniff(tcga / name).kind == kind, name
    # The name does not matter: a gzip MAF renamed to .txt is still a MAF.
    renamed = tmp_path / "mutations.txt"
    shutil.copy(tcga / "maftools_tcga_laml.maf.gz", renamed)
    assert sniff(renamed).kind == "maf"
    star = sniff(tcga / "gdc_rnaseq_tool_test_set_1.augmented_star_gene_counts.tsv.gz")
    assert star.gene_model == "GENCODE v36"
    assert sniff(tcga / "vcf2maf_test_b38_output_fullcolumns.maf").maf_version == "2.4"
    odd = tmp_path / "notes.tsv"
    odd.write_text("alpha\tbeta\n1\t2\n")
    with pytest.raises(DataError, match=r"notes.tsv: cannot tell what this file is"):
        sniff(odd)


def _maf(spark, path):
    item = sniff(path)
    return maf.parse_maf(
        spark, [{"file_path": str(path), "header": item.header, "maf_version": item.maf_version}]
    )


def _count_file(path, unresolved=None) -> dict:
    item = sniff(path)
    positions = counts.count_positions(item.header if item.kind == "star_counts" else None)
    row = dict.fromkeys(counts.FILE_COLUMNS)
    row.update(file_index=0, file_path=str(path), file_name=path.name, unresolved=unresolved)
    row["has_header"] = item.kind == "star_counts"
    row.update({f"pos_{name}": position for name, position in positions.items()})
    return row


def test_count_file_with_bad_lines_keeps_the_good_ones(spark, tmp_path):
    path = tmp_path / "sample.augmented_star_gene_counts.tsv"
    header = "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
    path.write_text(
        "# gene-model: GENCODE v36\n"
        + header
        + "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n"
        + "N_unmapped\t\t\t10\t11\t12\t\t\t\n"
        + "ENSG00000000003.15\tTSPAN6\tprotein_coding\t54.0\t1\t2\t0.5\t0.1\t0.2\n"
        + "\n"
        + "FOO1\tX\tpc\t1\t1\t1\t1\t1\t1\n"
        + "ENSG00000000005.6\tTNMD\tprotein_coding\tmany\t1\t2\t0.5\t0.1\t0.2\n"
        + "ENSG00000000419.13_PAR_Y\tDPM1\tprotein_coding\t3\t1\t2\tNA\t0.1\t0.2\n"
    )
    rows = {r["line_number"]: r for r in counts.parse_counts(spark, [_count_file(path)]).collect()}
    assert sorted(rows) == [3, 4, 6, 7, 8]  # comment, header and blank lines are not rows
    assert (rows[3]["is_summary"], rows[3]["metric"], rows[3]["stranded_second"]) == (True, "N_unmapped", 12)
    assert (rows[4]["gene_id"], rows[4]["gene_version"], rows[4]["unstranded"]) == ("ENSG00000000003", 15, 54)
    assert (rows[8]["gene_id"], rows[8]["tpm_unstranded"]) == ("ENSG00000000419_PAR_Y", None)
    rejected = {n: (r["reject_reason"], r["record"]) for n, r in rows.items() if r["reject_reason"]}
    assert rejected == {
        6: ("FOO1 is not an Ensembl gene ID", "FOO1\tX\tpc\t1\t1\t1\t1\t1\t1"),
        7: (
            "a count or TPM/FPKM value is not a number",
            "ENSG00000000005.6\tTNMD\tprotein_coding\tmany\t1\t2\t0.5\t0.1\t0.2",
        ),
    }
    assert all(r["record"] is None for n, r in rows.items() if n not in rejected)


def test_regular_files_read_the_same_by_both_readers(shared_data, tmp_path):
    from lakehouse.synth.tcga import generate_tcga

    cohort = generate_tcga(tmp_path / "cohort", cases=1, genes=300, seed=3, normal_fraction=0.0)
    paths = {
        shared_data / TCGA / "gdc_rnaseq_tool_test_set_1.augmented_star_gene_counts.tsv.gz": True,
        shared_data / TCGA / "GenomicDataCommons_example.htseq.counts.gz": False,
        shared_data / TCGA / "maftools_tcga_laml.maf.gz": True,
        **dict.fromkeys(cohort.out.glob("*/*.augmented_star_gene_counts.tsv"), True),
        **dict.fromkeys(cohort.out.glob("*.maf.gz"), True),
    }
    for path, header in paths.items():
        fast = tabular._regular(tabular.whole(str(path)), header)
        assert fast is not None, path  # regular files take the CSV reader
        exact = tabular._irregular(tabular.whole(str(path)), header)
        assert len(fast) >= 10 and fast.line_number.equals(exact.line_number), path
        assert all(a.equals(b) for a, b in zip(fast.fields, exact.fields, strict=True)), path
        assert fast.record().equals(exact.record()), path


def test_irregular_file_rows_keep_their_line_numbers(tmp_path):
    path = tmp_path / "ragged.tsv"
    path.write_bytes(b"#c1\n#c2\nA\tB\tC\r\nx\ty\tz\r\n\n  \nA\tB\tC\nshort\n#late\nw\t\tv\textra\n")
    assert tabular._regular(tabular.whole(str(path)), header=True) is None
    rows = tabular.read_rows(str(path), header=True)
    assert rows.line_number.to_pylist() == [4, 8, 10]
    assert rows.width.to_pylist() == [3, 1, 4]
    assert [rows.field(i).to_pylist() for i in (1, 2, 4, 5)] == [
        ["x", "short", "w"],
        ["y", None, ""],
        [None, None, "extra"],
        [None, None, None],
    ]
    assert rows.record().to_pylist() == ["x\ty\tz", "short", "w\t\tv\textra"]


def test_files_sharing_a_task_may_come_out_with_different_arrow_types(spark):
    """Every file of a task yields its own batches: a column all null in one file (no rejected row, no
    record) must still stream after a file whose column holds strings."""

    def task(batches):
        for batch in batches:
            for path in batch.column("file_path").to_pylist():
                yield pa.record_batch({"file_path": [path], "record": pa.nulls(1)})
                yield pa.record_batch({"file_path": [path], "record": pa.array(["raw line"])})

    files = [{"file_path": name} for name in ("a.tsv", "b.tsv", "c.tsv")]
    rows = tabular.map_files(
        spark, files, "file_path string", task, "file_path string, record string"
    ).collect()
    assert sorted(((r.file_path, r.record) for r in rows), key=lambda row: (row[0], row[1] or "")) == [
        (name, record) for name in ("a.tsv", "b.tsv", "c.tsv") for record in (None, "raw line")
    ]


def test_files_are_dealt_to_tasks_by_size(spark, tmp_path):
    """As many tasks as cores, each reading about as many bytes: two big files never share a task (a
    `repartition` sent both of two files to one task), and small ones fill the lighter task."""
    cores = spark.sparkContext.defaultParallelism
    assert cores == 2
    sizes = {"big1": 9000, "big2": 8000, "small1": 1000, "small2": 500, "small3": 400}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)

    def task(batches):
        from pyspark import TaskContext

        for batch in batches:
            paths = batch.column("file_path").to_pylist()
            yield pa.record_batch(
                {"file_path": paths, "task": [TaskContext.get().partitionId()] * len(paths)}
            )

    files = [{"file_path": str(tmp_path / name)} for name in sizes]
    rows = tabular.map_files(spark, files, "file_path string", task, "file_path string, task int").collect()
    tasks: dict[int, set[str]] = {}
    for row in rows:
        tasks.setdefault(row.task, set()).add(row.file_path.rsplit("/", 1)[1])
    # 9000 | 8000, then 8000+1000 = 9000 | a tie, fewer files first: 9000+500 | 9000+400
    assert sorted(tasks.values(), key=sorted) == [{"big1", "small2"}, {"big2", "small1", "small3"}]


def test_parse_maf_matches_pandas(spark, shared_data):
    path = shared_data / TCGA / "maftools_tcga_laml.maf.gz"
    rows = _maf(spark, path).persist()
    expected = pd.read_csv(path, sep="\t", dtype=str)
    assert rows.count() == len(expected) == 2207
    assert rows.filter(F.col("reject_reason").isNotNull()).count() == 0
    per_sample = {
        r["tumor_sample_barcode"]: r["count"] for r in rows.groupBy("tumor_sample_barcode").count().collect()
    }
    assert per_sample == expected["Tumor_Sample_Barcode"].value_counts().to_dict()
    per_gene = {r["hugo_symbol"]: r["count"] for r in rows.groupBy("hugo_symbol").count().collect()}
    assert per_gene == expected["Hugo_Symbol"].value_counts().to_dict()
    first = rows.filter(F.col("line_number") == 2).first()
    assert (first["hugo_symbol"], first["chromosome"], first["start_position"], first["end_position"]) == (
        "ABCA10",
        "17",
        67170917,
        67170917,
    )
    assert first["case_barcode"] == "TCGA-AB-2988" and first["entrez_gene_id"] == 10349
    assert first["other_fields"] == {"protein_change": "p.K960R"} or first["protein_change"] == "p.K960R"
    assert first["other_fields"]["i_tumorvaf_wu"] == "45.66"
    assert rows.agg(F.sum("start_position")).first()[0] == expected["Start_Position"].astype("int64").sum()
    rows.unpersist()


def test_parse_full_width_maf_keeps_every_column(spark, shared_data):
    path = shared_data / TCGA / "vcf2maf_test_b38_output_fullcolumns.maf"
    item = sniff(path)
    rows = _maf(spark, path).collect()
    assert len(rows) == 25 and len(item.header) == 114
    first = min(rows, key=lambda r: r["line_number"])
    assert first["line_number"] == 3
    assert (first["hugo_symbol"], first["ncbi_build"], first["t_depth"], first["t_alt_count"]) == (
        "RUNX1",
        "GRCh38",
        54,
        21,
    )
    assert first["t_ref_count"] is None  # "." in the file
    assert first["gene"] == "ENSG00000159216" and first["maf_version"] == "2.4"
    assert first["other_fields"]["consequence"] == "missense_variant"
    assert "center" not in first["other_fields"]  # typed columns are not repeated in the map
    # Barcodes are the placeholders TUMOR/NORMAL: nothing can be joined to a case.
    assert {r["reject_reason"] for r in rows} == {
        "Tumor_Sample_Barcode TUMOR is not a TCGA barcode: the row cannot be joined to a case"
    }


def test_minimalist_maf_and_duplicates(spark, tmp_path):
    path = tmp_path / "mini.maf"
    path.write_text(
        "Chromosome\tStart_Position\tReference_Allele\tTumor_Seq_Allele2\tTumor_Sample_Barcode\n"
        "1\t100\tC\tT\tTCGA-A1-A0SF-01A-11D-A142-09\n"
        "1\t100\tC\tT\tTCGA-A1-A0SF-01A-11D-A142-09\n"
        "1\tabc\tC\tT\tTCGA-A1-A0SF-01A-11D-A142-09\n"
        "2\t5\t-\tA\tTCGA-A1-A0SF-01A-11D-A142-09\textra\n"
    )
    rows = {r["line_number"]: r for r in _maf(spark, path).collect()}
    assert rows[2]["reject_reason"] is None and rows[2]["end_position"] == 100
    assert rows[3]["reject_reason"] == "repeats line 2 (same tumour barcode, position and alleles)"
    assert rows[4]["reject_reason"] == "Start_Position/End_Position missing or not an integer"
    assert rows[5]["reject_reason"] == "expected 5 tab-separated fields, found 6"


def test_typed_maf_rows_keep_their_raw_record(spark, tmp_path):
    path = tmp_path / "typed.maf"
    line = "TP53\t17\t100\t100\tC\tT\tTCGA-A1-A0SF-01A-11D-A142-09\t."
    path.write_text(
        "#version 2.4\nHugo_Symbol\tChromosome\tStart_Position\tEnd_Position\tReference_Allele\t"
        f"Tumor_Seq_Allele2\tTumor_Sample_Barcode\tt_depth\n{line}\n{line}\n"
    )
    assert tabular._regular(tabular.whole(str(path)), True, {3: "bigint", 8: "int"}) is not None  # read typed
    rows = {r["line_number"]: r for r in _maf(spark, path).collect()}
    assert (rows[3]["t_depth"], rows[3]["start_position"], rows[3]["reject_reason"]) == (None, 100, None)
    assert rows[3]["case_barcode"] == "TCGA-A1-A0SF" and rows[3]["sample_type"] == "Primary Solid Tumor"
    assert rows[4]["reject_reason"] == "repeats line 3 (same tumour barcode, position and alleles)"
    assert rows[4]["record"] == line  # the missing t_depth as written, "."


def _cut_maf(tmp_path):
    """A plain MAF of generated rows with, past its first lines, a comment, a blank line, the header again,
    a row of the wrong width and a repeat of its second data line (line 6)."""
    from lakehouse.synth.tcga import generate_tcga

    cohort = generate_tcga(tmp_path / "cohort", cases=30, genes=60, seed=4, normal_fraction=0.0)
    with gzip.open(next(cohort.out.glob("*.maf.gz")), "rt") as handle:
        lines = handle.read().splitlines()
    top = [line for line in lines if line.startswith("#")]
    header, body = lines[len(top)], lines[len(top) + 1 :]
    assert len(top) == 3 and len(body) > 40
    odd = ["#a comment", "", header, body[5] + "\textra"]
    text = "\n".join([*top, header, *body[:20], *odd, *body[20:], body[1]]) + "\n"
    path = tmp_path / "cut.maf"
    path.write_text(text)
    return path, text.encode()


def _task_rows(path, spans) -> list[dict]:
    item = sniff(path)
    files = [
        {"file_path": str(path), "header": item.header, "maf_version": item.maf_version,
         "piece_start": start, "piece_stop": stop}
        for start, stop in spans
    ]  # fmt: skip
    batches = maf._maf_task([pa.RecordBatch.from_pylist(files)])
    return sorted(pa.Table.from_batches(list(batches)).to_pylist(), key=lambda row: row["line_number"])


def test_maf_pieces_parse_as_the_whole_file(tmp_path):
    path, data = _cut_maf(tmp_path)
    whole = _task_rows(path, [(None, None)])
    lines = data.split(b"\n")
    repeat = len(lines) - 1  # the last line: a repeat of line 6
    width = len(sniff(path).header)
    assert {row["line_number"]: row["reject_reason"] for row in whole if row["reject_reason"]} == {
        28: f"expected {width} tab-separated fields, found {width + 1}",
        repeat: "repeats line 6 (same tumour barcode, position and alleles)",
    }
    assert len(whole) == len(lines) - 1 - 4 - 3  # less the end, the top four and three odd lines
    line_start = len(b"\n".join(lines[:30])) + 1  # where line 31 starts
    middle = len(b"\n".join(lines[:9])) + 10  # inside line 10
    before_odd = len(b"\n".join(lines[:23]))  # the end of line 23: line 24 starts a byte later
    layouts = {
        "mid-line": [(0, len(data) // 3), (len(data) // 3, 2 * len(data) // 3), (2 * len(data) // 3, None)],
        "at a newline, the odd lines in the second piece": [(0, before_odd), (before_odd, None)],
        "at a line start, the odd lines in the first piece": [(0, line_start), (line_start, None)],
        "inside the comments": [(0, 5), (5, None)],
        "a piece with no line start": [(0, middle), (middle, middle + 1), (middle + 1, None)],
    }  # fmt: skip
    for name, spans in layouts.items():
        assert _task_rows(path, spans) == whole, name


def test_a_big_plain_maf_is_parsed_in_pieces_by_every_task(spark, tmp_path, monkeypatch):
    path, _ = _cut_maf(tmp_path)
    whole = _task_rows(path, [(None, None)])
    gz = tmp_path / "cut.maf.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    files = [{"file_path": str(p), "header": ["h"], "maf_version": None} for p in (path, gz)]
    monkeypatch.setattr(tabular, "SMALLEST_PIECE", 1)
    size = path.stat().st_size
    assert [(f["piece_start"], f["piece_stop"]) for f in tabular.pieces(files, 2)] == [
        (0, size // 2), (size // 2, None), (None, None)  # a gzip file is read whole
    ]  # fmt: skip
    assert [(f["piece_start"], f["piece_stop"]) for f in tabular.pieces(files[:1], 2, smallest=size)] == [
        (None, None)
    ]
    parsed = _maf(spark, path)
    tasks = parsed.select(F.spark_partition_id().alias("task")).distinct().count()
    assert tasks == 2
    rows = sorted((r.asDict(recursive=True) for r in parsed.collect()), key=lambda row: row["line_number"])
    assert [{**r, "other_fields": dict(r["other_fields"])} for r in whole] == rows


def test_clinical_records_from_biotab_annotation_and_xml(shared_data):
    tcga = shared_data / TCGA
    biotab = clinical_rows(
        tcga / "onco_lnc_TCGA-LAML_nationwidechildrens.org_clinical_patient_laml.txt", "clinical_biotab"
    )
    assert len(biotab) == 200  # 203 lines minus 3 header rows
    first = clinical_record(biotab[0][1])
    assert (
        first["case_barcode"] == "TCGA-AB-2802" and first["case_id"] == "b93cb62a-a7dc-406d-8482-6b51a92ea3c3"
    )
    assert (first["vital_status"], first["days_to_death"], first["days_to_last_follow_up"]) == (
        "dead",
        365,
        None,
    )
    assert (first["overall_survival_days"], first["death_event"]) == (365, 1)
    assert first["gender"] == "male" and first["primary_diagnosis"] == "M4"
    assert "basophils_count_2" in biotab[0][1]  # repeated column kept under a suffixed name
    assert all(v is not None for v in first["other_fields"].values())
    assert "[Not Available]" not in first["other_fields"].values()
    assert "karnofsky_score" not in first["other_fields"]  # [Not Available] in the file
    annot = clinical_rows(tcga / "maftools_tcga_laml_annot.tsv", "clinical_tsv")
    alive = clinical_record(dict(annot[2][1]))
    assert alive["case_barcode"] == "TCGA-AB-2804"
    assert (alive["vital_status"], alive["overall_survival_days"], alive["death_event"]) == ("alive", 2557, 0)
    xml = clinical_record(
        clinical_xml(tcga / "gdc_bcr_xml" / "nationwidechildrens.org_clinical.TCGA-3C-AAAU.xml")
    )
    assert xml["case_barcode"] == "TCGA-3C-AAAU" and xml["project_id"] == "TCGA-BRCA"
    assert xml["vital_status"] == "alive" and xml["gender"] == "female"
    assert xml["days_to_last_follow_up"] == 4047 and xml["overall_survival_days"] == 4047  # latest follow-up
    assert xml["case_id"] == "6e7d5ec6-a469-467c-b748-237353c23416"
    found = biospecimen_xml(tcga / "gdc_bcr_xml" / "nationwidechildrens.org_biospecimen.TCGA-3C-AAAU.xml")
    levels = {f["level"] for f in found}
    assert {"patient", "sample", "aliquot"} <= levels
    assert all(f["case_id"] == "6e7d5ec6-a469-467c-b748-237353c23416" for f in found)
    aliquots = [f for f in found if f["level"] == "aliquot"]
    assert len(aliquots) == 7 and all(len(a["barcode"]) == 28 and a["uuid"] for a in aliquots)


def test_gdc_portal_rows_of_one_case_merge():
    rows = [
        {"case_submitter_id": "TCGA-AA-0001", "vital_status": "Alive", "days_to_last_follow_up": "100"},
        {"case_submitter_id": "TCGA-AA-0001", "vital_status": None, "days_to_last_follow_up": "450"},
    ]
    record = clinical_record(merge_case_fields(rows))
    assert (record["vital_status"], record["overall_survival_days"], record["death_event"]) == (
        "alive",
        450,
        0,
    )
    assert clinical_record({"case_submitter_id": "not a barcode"}) is None


def _sample_sheet(path, rows):
    header = "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type\n"
    path.write_text(header + "".join("\t".join(r) + "\n" for r in rows))
    return path


def _table(spark, name):
    return spark.table(name)


def test_shared_files_land_and_reingest_adds_nothing(spark, settings, shared_data, tmp_path):
    from lakehouse.sources.tcga import ingest_tcga

    tcga = shared_data / TCGA
    star = tcga / "gdc_rnaseq_tool_test_set_1.augmented_star_gene_counts.tsv.gz"
    htseq = tcga / "GenomicDataCommons_example.htseq.counts.gz"
    # Count files name no sample: without a sample sheet every row is quarantined, with the reason.
    first = ingest_tcga(spark, settings, [star, htseq])
    assert first.inputs == (str(star.resolve()), str(htseq.resolve()))
    assert dict(first.counts) == {"htseq_counts": 1, "star_counts": 1, "rows read": first.counts["rows read"]}
    assert first.quarantined == 100 + 50
    reasons = (
        spark.table("quality.quarantine")
        .filter(F.col("source_file") == str(star))
        .select("reason")
        .distinct()
    )
    assert [r["reason"] for r in reasons.collect()] == [
        (
            f"no GDC sample sheet, metadata JSON or file map names {star.name} (nor its directory as a file id): "
            "the file's sample and case are unknown; ingest the sample sheet with it"
        )
    ]
    sheet = _sample_sheet(
        tmp_path / "gdc_sample_sheet.tsv",
        [
            (
                "f0000000-0000-0000-0000-000000000001",
                star.name,
                "Transcriptome Profiling",
                "Gene Expression Quantification",
                "TCGA-BRCA",
                "TCGA-A1-A0SF",
                "TCGA-A1-A0SF-01A",
                "Primary Tumor",
            ),
            (
                "f0000000-0000-0000-0000-000000000002",
                htseq.name,
                "Transcriptome Profiling",
                "Gene Expression Quantification",
                "TCGA-BRCA",
                "TCGA-A1-A0SF",
                "TCGA-A1-A0SF-11A",
                "Solid Tissue Normal",
            ),
        ],
    )
    run = ingest_tcga(spark, settings, [tcga, sheet], release="test")
    assert run_status(spark, run.run_id) == "succeeded"
    assert set(run.counts) >= {
        "maf",
        "star_counts",
        "htseq_counts",
        "clinical_biotab",
        "clinical_tsv",
        "clinical_xml",
        "biospecimen_xml",
        "file_sample_map",
        "sample_sheet",
    }
    # Mutations: LAML (2,207) and minimalist BRCA (645) land; the vcf2maf layout file's TUMOR rows cannot.
    # Only this test's files: other modules (the survival experiment) land generated MAFs in the same session.
    shared_files = [str(p) for p in tcga.rglob("*") if p.is_file()] + [
        str(p.resolve()) for p in tcga.rglob("*") if p.is_file()
    ]
    mutations = spark.table("silver.tcga_mutations").filter(F.col("source_file").isin(shared_files))
    assert mutations.count() == 2207 + 645
    laml = pd.read_csv(tcga / "maftools_tcga_laml.maf.gz", sep="\t", dtype=str)
    got = {
        r["case_barcode"]: r["count"]
        for r in mutations.filter(F.col("case_barcode").startswith("TCGA-AB"))
        .groupBy("case_barcode")
        .count()
        .collect()
    }
    assert got == laml["Tumor_Sample_Barcode"].value_counts().to_dict()
    assert run.quarantined == 25
    # Nothing in the LAML files names the project (the Biotab's name does, but names are not read).
    assert mutations.filter(F.col("tumor_sample_barcode") == "TCGA-AB-2988").first()["project_id"] is None
    # Expression: per-gene counts equal pandas' reading of the same files.
    expression = spark.table("silver.tcga_expression")
    star_pd = pd.read_csv(star, sep="\t", comment="#")
    star_genes = star_pd[star_pd["gene_id"].str.startswith("ENSG")]
    rows = {r["gene_id"]: r for r in expression.filter(F.col("file_name") == star.name).collect()}
    assert len(rows) == len(star_genes) == 96
    for _, gene in star_genes.iterrows():
        unversioned, version = re.fullmatch(r"(ENSG\d+)\.(\d+)(_PAR_Y)?", gene["gene_id"]).group(1, 2)
        row = rows[unversioned + ("_PAR_Y" if gene["gene_id"].endswith("_PAR_Y") else "")]
        assert (row["unstranded"], row["stranded_first"], row["gene_name"]) == (
            gene["unstranded"],
            gene["stranded_first"],
            gene["gene_name"],
        )
        assert row["tpm_unstranded"] == pytest.approx(gene["tpm_unstranded"])
        assert row["gene_version"] == int(version)
    first_row = rows["ENSG00000000003"]
    assert (first_row["sample_barcode"], first_row["case_barcode"], first_row["gene_model"]) == (
        "TCGA-A1-A0SF-01A",
        "TCGA-A1-A0SF",
        "GENCODE v36",
    )
    htseq_pd = pd.read_csv(htseq, sep="\t", header=None, names=["gene", "count"])
    per_gene = {
        r["gene_id"]: r["unstranded"] for r in expression.filter(F.col("file_name") == htseq.name).collect()
    }
    assert per_gene == {g.split(".")[0]: c for g, c in zip(htseq_pd["gene"], htseq_pd["count"], strict=True)}
    qc = {r["metric"]: r["unstranded"] for r in spark.table("silver.tcga_expression_qc").collect()}
    assert qc == {
        "N_unmapped": 38463,
        "N_multimapping": 438275,
        "N_noFeature": 2115417,
        "N_ambiguous": 318096,
    }
    # Clinical: one row per case, from Biotab + annotation (LAML) and BCR XML (BRCA).
    clinical = spark.table("silver.tcga_clinical").filter(F.col("source_file").isin(shared_files))
    assert clinical.count() == clinical.select("case_barcode").distinct().count() == 200 + 3
    laml_case = clinical.filter(F.col("case_barcode") == "TCGA-AB-2802").first()
    assert (laml_case["overall_survival_days"], laml_case["death_event"], laml_case["primary_diagnosis"]) == (
        365,
        1,
        "M4",
    )
    assert laml_case["other_fields"]["cyto_risk_group"] == "Intermediate/Normal"
    assert (
        "karnofsky_score" not in laml_case["other_fields"]
    )  # [Not Available] → dropped, never stored as text
    # Samples: every barcode seen, decomposed, with UUIDs from the biospecimen XML.
    samples = spark.table("silver.tcga_samples")
    assert samples.count() == samples.select("barcode").distinct().count()
    aliquot = samples.filter(F.col("barcode") == "TCGA-3C-AAAU-01A-11D-A41E-01").first()
    assert aliquot["aliquot_id"] == "d247c6c5-a429-41ae-83d9-bf8307ab76e5"
    assert aliquot["case_id"] == "6e7d5ec6-a469-467c-b748-237353c23416" and aliquot["plate"] == "A41E"
    mapped = samples.filter(F.col("barcode") == "TCGA-AB-3007-03A-01T-0736-13").first()
    assert mapped["sample_type"] == "Primary Blood Derived Cancer - Peripheral Blood"
    # Gold: one row per sample × gene for the two mapped count files.
    gold = spark.table("gold.tcga_gene_expression").filter(F.col("case_barcode") == "TCGA-A1-A0SF")
    assert {r["sample_barcode"]: r["count"] for r in gold.groupBy("sample_barcode").count().collect()} == {
        "TCGA-A1-A0SF-01A": 95,  # 96 genes less the _PAR_Y copy of CD99
        "TCGA-A1-A0SF-11A": 50,
    }
    assert (
        gold.filter(F.col("sample_barcode") == "TCGA-A1-A0SF-11A").first()["sample_type"]
        == "Solid Tissue Normal"
    )
    counts = {
        name: spark.table(name).count()
        for name in (
            "silver.tcga_mutations",
            "silver.tcga_expression",
            "silver.tcga_clinical",
            "silver.tcga_samples",
            "gold.tcga_gene_expression",
            "quality.quarantine",
        )
    }
    again = ingest_tcga(spark, settings, [tcga, sheet], release="test")
    assert again.rows_written == 0 and again.quarantined == 0
    assert {name: spark.table(name).count() for name in counts} == counts


def test_generated_cohort_is_deterministic(tmp_path):
    import hashlib

    from lakehouse.synth.tcga import generate_tcga

    def digest(root):
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = generate_tcga(tmp_path / "a", cases=6, genes=40, seed=3)
    b = generate_tcga(tmp_path / "b", cases=6, genes=40, seed=3)
    assert digest(a.out) == digest(b.out)
    c = generate_tcga(tmp_path / "c", cases=6, genes=40, seed=4)
    assert digest(c.out) != digest(a.out)


def test_generated_cohort_lands_with_every_row_joined_to_a_case(spark, settings, tmp_path):
    import json

    from lakehouse.sources.tcga import ingest_tcga
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(tmp_path / "cohort", cases=12, genes=200, seed=5)
    # A second caller's MAF reporting one of the same mutations with other read counts (per-caller MAFs do):
    # the mutation lands once, from the file landed last.
    first_maf = min(made.out.glob("*.somatic.maf.gz"))
    maf_lines = gzip.decompress(first_maf.read_bytes()).decode().splitlines(keepends=True)
    header_at = next(i for i, line in enumerate(maf_lines) if line.startswith("Hugo_Symbol"))
    columns = maf_lines[header_at].rstrip("\n").split("\t")
    repeated = maf_lines[header_at + 1].rstrip("\n").split("\t")
    repeated[columns.index("t_depth")] = "999"
    second_caller = made.out / "zz-second-caller.somatic.maf.gz"
    second_caller.write_bytes(
        gzip.compress("".join([*maf_lines[: header_at + 1], "\t".join(repeated) + "\n"]).encode())
    )
    result = ingest_tcga(spark, settings, [made.out])
    assert result.quarantined == 0 and run_status(spark, result.run_id) == "succeeded"
    mine = F.col("source_file").startswith(str(made.out))
    expression = spark.table("silver.tcga_expression").filter(mine)
    mutations = spark.table("silver.tcga_mutations").filter(mine)
    clinical = spark.table("silver.tcga_clinical").filter(mine)
    gold = spark.table("gold.tcga_gene_expression").filter(mine)
    assert expression.count() == made.counts_files * 200
    assert mutations.count() == made.mutations
    [again] = mutations.filter(F.col("source_file") == str(second_caller.resolve())).collect()
    assert (
        again.t_depth == 999 and again.tumor_sample_barcode == repeated[columns.index("Tumor_Sample_Barcode")]
    )
    assert clinical.count() == 12
    assert gold.count() == made.counts_files * 200
    # Every expression, mutation and gold row has a clinical case.
    for rows in (expression, mutations, gold):
        assert rows.join(clinical, on="case_barcode", how="left_anti").count() == 0
    truth = {c["case"]: c for c in json.loads((made.out / ".synthetic_truth.json").read_text())["cases"]}
    for row in clinical.collect():
        planted = truth[row["case_barcode"]]
        assert row["project_id"] == planted["project"]
        assert (row["death_event"], row["overall_survival_days"]) == (int(planted["dead"]), planted["days"])
    # Aliquot barcodes and UUIDs come from the metadata JSON; sample barcodes from the sample sheet.
    aliquots = expression.select("aliquot_barcode").distinct().collect()
    assert all(r["aliquot_barcode"] and len(r["aliquot_barcode"]) == 28 for r in aliquots)
    samples = spark.table("silver.tcga_samples").filter(
        F.col("barcode").isin(*[r["aliquot_barcode"] for r in aliquots])
    )
    assert samples.filter(F.col("aliquot_id").isNull()).count() == 0
    assert samples.count() == len(aliquots)
    assert {r["project_id"] for r in gold.select("project_id").distinct().collect()} <= {
        p["project"] for p in truth.values()
    }
