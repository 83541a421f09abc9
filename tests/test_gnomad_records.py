"""The gnomAD line parser's own pieces: line splitting on bytes, casting several fields in one call, and
(when built) the native tokeniser against the pure-Python one."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from lakehouse.sources.gnomad import records
from lakehouse.sources.gnomad.header import parse_header

HEADER_LINES = [
    "##fileformat=VCFv4.2",
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">',
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
    '##INFO=<ID=nhomalt,Number=A,Type=Integer,Description="Homozygotes">',
    '##INFO=<ID=lcr,Number=0,Type=Flag,Description="Low complexity">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
]
HEADER = "\n".join(HEADER_LINES)


def test_line_bounds_count_every_line_and_drop_crlf():
    count, starts, ends = records._line_bounds(b"a\r\nbb\n\n#c\r\r\nd")
    assert count == 5
    pieces = [b"a\r\nbb\n\n#c\r\r\nd"[s:e] for s, e in zip(starts, ends, strict=True)]
    assert pieces == [b"a", b"bb", b"", b"#c\r", b"d"]
    assert records._line_bounds(b"")[0] == 0
    assert records._line_bounds(b"x\n")[0] == 1


def test_parse_lines_on_bytes_matches_parse_records_on_strings():
    header = parse_header(HEADER, "test.vcf")
    lines = [
    "#comment",
    "chr1\t10\t.\tA\tC\t.\tPASS\tAC=1;AN=10;AF=0.1;nhomalt=0;lcr",
    "",
    "chr1\t11\trs1\tA\tC\t5\t.\tAC=x;AN=10",
    "chr1\t12\t.\tA\tC\t.\tPASS\t.",
    "chr1\t13\t.\tA\tC\t.\tPASS\tAC=1;BAD=2",
    "chr1\t14\t.\tA\tC\t.\tPASS\tAC=2;AN=\xe9",
    ]
    data = ("\r\n".join(lines) + "\n").encode() + b"chr1\t15\t.\tA\tC\t.\tPASS\tAN=\xff\n"
    parsed = records.parse_lines(data, header, first_line=3)
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")[:-1]
    keep = [i for i, line in enumerate(text) if line and not line.startswith("#")]
    expected = records.parse_records([text[i] for i in keep], np.array(keep) + 3, header)
    assert parsed.lines == 8 and parsed.records == 6
    assert parsed.batch.equals(expected.batch)
    assert parsed.bad == expected.bad
    assert [b[0] for b in parsed.bad] == [6, 8, 9, 10]
    assert parsed.bad[0][2] == "INFO AC value 'x' is not a valid Integer"
    assert parsed.bad[-1][2] == "INFO AN value '\ufffd' is not a valid Integer"


def test_cast_fields_matches_field_by_field_cast():
    values = pa.array(["1", None, "3", "4", "x", "6", "7", None, "9.5"])
    cuts = np.array([0, 3, 6, 9])
    typed, bad = records._cast_fields(values, pa.int32(), cuts, clean=True)
    pieces = [records._cast(values.slice(s, e - s), pa.int32(), clean=True) for s, e in itertools.pairwise(cuts)]
    assert typed.equals(pa.concat_arrays([p[0] for p in pieces]))
    assert bad.tolist() == np.concatenate([p[1] for p in pieces]).tolist()
    assert bad.tolist() == [False, False, False, False, True, False, False, False, True]
    typed, bad = records._cast_fields(pa.array(["1", "."]), pa.float64(), np.array([0, 1, 2]))
    assert typed.to_pylist() == [1.0, None] and not bad.any()
