"""Synthetic gnomAD-v4-shaped sites VCFs, written as true BGZF (with the end-of-file block).

The header has the shape of a v4.1 genomes file: ~400 INFO definitions — AC/AN/AF/nhomalt per subset ×
genetic-ancestry group × sex (`AC_afr_XX`, `AF_joint_nfe`), grpmax and faf fields, histograms, site metrics,
flags, and `vep` with a `Format:` declaration. Records have a share of indels and of unsplit multi-allelic
sites (Number=A/R values listed per allele). Same seed, same bytes.

INFO bodies are drawn from a pool generated up front, so millions of records are written at disk speed.
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from pathlib import Path

from lakehouse.sources.gnomad.bgzf import BGZF_EOF

GROUPS = ("afr", "ami", "amr", "asj", "eas", "fin", "mid", "nfe", "remaining", "sas")
SUBSETS = ("", "joint_")
SEXES = ("", "_XX", "_XY")
VEP_FIELDS = (  # noqa: SIM905
    "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|INTRON|HGVSc|HGVSp|cDNA_position|"
    "CDS_position|Protein_position|Amino_acids|Codons|ALLELE_NUM|DISTANCE|STRAND|FLAGS|VARIANT_CLASS|"
    "SYMBOL_SOURCE|HGNC_ID|CANONICAL|MANE_SELECT|MANE_PLUS_CLINICAL|TSL|APPRIS|CCDS|ENSP|UNIPROT_ISOFORM|"
    "SOURCE|DOMAINS|miRNA|HGVS_OFFSET|PUBMED|MOTIF_NAME|MOTIF_POS|HIGH_INF_POS|MOTIF_SCORE_CHANGE|"
    "TRANSCRIPTION_FACTORS|LoF|LoF_filter|LoF_flags|LoF_info"
).split("|")
CONTIG_LENGTHS = {"chr1": 248956422, "chr2": 242193529, "chrX": 156040895}
BLOCK = 65280  # bgzip's uncompressed block size


def info_definitions() -> list[tuple[str, str, str, str]]:
    """(ID, Number, Type, Description) in v4 order."""
    fields = []
    for subset in SUBSETS:
        for group in ("", *(f"_{g}" for g in GROUPS)):
            for sex in SEXES:
                suffix = f"{'_' + subset.rstrip('_') if subset else ''}{group}{sex}"
                label = f"{subset or 'all '}{group.strip('_') or 'all groups'}{sex}"
                fields += [
                    (f"AC{suffix}", "A", "Integer", f"Alternate allele count for {label}"),
                    (f"AF{suffix}", "A", "Float", f"Alternate allele frequency for {label}"),
                    (f"AN{suffix}", "1", "Integer", f"Total number of alleles for {label}"),
                    (f"nhomalt{suffix}", "A", "Integer", f"Count of homozygous individuals for {label}"),
                ]
    fields += [
        ("grpmax", "A", "String", "Genetic ancestry group with the maximum allele frequency"),
        ("AC_grpmax", "A", "Integer", "Allele count in the grpmax group"),
        ("AF_grpmax", "A", "Float", "Maximum allele frequency across groups"),
        ("AN_grpmax", "A", "Integer", "Total number of alleles in the grpmax group"),
        ("nhomalt_grpmax", "A", "Integer", "Homozygous individuals in the grpmax group"),
    ]
    for level in ("95", "99"):
        for group in ("", "_afr", "_amr", "_eas", "_nfe", "_sas"):
            fields.append((f"faf{level}{group}", "A", "Float", f"Filtering allele frequency ({level}% CI)"))
    for hist in ("age_hist_het", "age_hist_hom"):
        fields += [
            (f"{hist}_bin_freq", "A", "String", "Histogram bin frequencies (pipe-delimited)"),
            (f"{hist}_n_smaller", "A", "Integer", "Count below the first bin"),
            (f"{hist}_n_larger", "A", "Integer", "Count above the last bin"),
        ]
    for hist in ("gq_hist_alt", "gq_hist_all", "dp_hist_alt", "dp_hist_all", "ab_hist_alt"):
        fields.append((f"{hist}_bin_freq", "A", "String", "Histogram bin frequencies (pipe-delimited)"))
    for metric in ("FS", "MQ", "MQRankSum", "QD", "ReadPosRankSum", "SOR", "AS_FS", "AS_MQ", "AS_QD", "AS_SOR",
                   "AS_VQSLOD", "inbreeding_coeff", "cadd_raw_score", "cadd_phred", "phylop"):  # fmt: skip
        fields.append((metric, "1", "Float", f"Site metric {metric}"))
    fields += [
        ("QUALapprox", "1", "Integer", "Sum of PL[0] values"),
        ("VarDP", "1", "Integer", "Depth over variant genotypes"),
        ("AS_SB_TABLE", ".", "String", "Allele-specific forward/reverse read counts (pipe-delimited)"),
        ("AS_culprit", "1", "String", "Worst-performing annotation in the VQSR model"),
        ("allele_type", "1", "String", "Allele type (snv, ins, del)"),
        ("variant_type", "1", "String", "Variant type (snv, indel, multi-snv, mixed)"),
        ("n_alt_alleles", "1", "Integer", "Total number of alternate alleles"),
        ("VRS_Allele_IDs", "R", "String", "GA4GH VRS allele identifiers"),
        ("VRS_Starts", "R", "Integer", "Interbase start coordinates"),
        ("VRS_Ends", "R", "Integer", "Interbase end coordinates"),
        ("VRS_States", ".", "String", "Literal sequence states"),
        ("lcr", "0", "Flag", "Variant falls within a low complexity region"),
        ("segdup", "0", "Flag", "Variant falls within a segmental duplication region"),
        ("non_par", "0", "Flag", "Variant (on sex chromosome) falls outside a pseudoautosomal region"),
        ("only_het", "0", "Flag", "All samples are heterozygous for the variant"),
        ("vep", ".", "String", f"Consequence annotations from Ensembl VEP. Format: {'|'.join(VEP_FIELDS)}"),
    ]
    return fields


def header_text(sample_count: int = 76215) -> str:
    lines = ["##fileformat=VCFv4.2", "##hailversion=0.2.130 (synthetic)"]
    for name, text in (("AC0", "Allele count is zero after filtering"), ("AS_VQSR", "Failed VQSR"),
                       ("InbreedingCoeff", "Inbreeding coefficient < -0.3"), ("PASS", "Passed all variant filters")):  # fmt: skip
        lines.append(f'##FILTER=<ID={name},Description="{text}">')
    for info_id, number, kind, description in info_definitions():
        lines.append(f'##INFO=<ID={info_id},Number={number},Type={kind},Description="{description}">')
    lines.append("##vep_version=v105")
    lines.append(f"##synthetic_samples={sample_count}")
    for contig, length in CONTIG_LENGTHS.items():
        lines.append(f"##contig=<ID={contig},length={length},assembly=gnomAD_GRCh38>")
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    return "\n".join(lines) + "\n"


def _hist(rng: random.Random, n: int) -> str:
    return "|".join(str(rng.randint(0, 50)) for _ in range(n))


_GROUP_FIELD = re.compile(r"^(AC|AF|AN|nhomalt)(_.*)?$")


def _group_values(
    rng: random.Random, k: int, scale: float = 1.0, an: int | None = None
) -> dict[str, list[str]]:
    """One group's AC, AF, AN and nhomalt as a real release has them: AC <= AN, AF = AC/AN (absent where
    AN = 0), nhomalt <= AC/2. `scale` multiplies every AC (and so AF) and draws the same random numbers
    whatever its value, so one seed gives the same sites at another scale."""
    drawn = rng.randint(0, 150000)
    an = drawn if an is None else an
    acs = [round(min(an, rng.choice((0, 0, 1, 2, rng.randint(0, 5000)))) * scale) for _ in range(k)]
    values = {"AN": [str(an)], "AC": [str(ac) for ac in acs]}
    values["nhomalt"] = [str(int(rng.random() * (ac // 2 + 1))) for ac in acs]
    if an:
        values["AF"] = [f"{ac / an:.6g}" for ac in acs]
    return values


def _sex_share(rng: random.Random, groups: dict, suffix: str) -> int | None:
    """AN of an XX or XY group: XX and XY samples partition their group, so AN_XX + AN_XY = AN."""
    base = suffix.removesuffix("_XX").removesuffix("_XY")
    share = rng.random()
    if base == suffix or base not in groups:
        return None
    total = int(groups[base]["AN"][0])
    xx = int(total * share)
    return xx if suffix.endswith("_XX") else total - int(groups[base + "_XX"]["AN"][0])


def _info_body(rng: random.Random, ref: str, alts: list[str], pos: int, scale: float = 1.0) -> str:
    k = len(alts)
    parts = []
    groups: dict[str, dict[str, list[str]]] = {}
    for info_id, number, kind, _ in info_definitions():
        field = _GROUP_FIELD.match(info_id)
        if field:
            kind_of, suffix = field.group(1), field.group(2) or ""
            if suffix not in groups:
                groups[suffix] = _group_values(rng, k, scale, _sex_share(rng, groups, suffix))
            if kind_of in groups[suffix]:
                values = groups[suffix][kind_of] * (k if kind_of == "AN" and number == "A" else 1)
                parts.append(f"{info_id}={','.join(values)}")  # AN_grpmax is per allele (Number=A)
            continue
        if kind == "Flag":
            if rng.random() < 0.1:
                parts.append(info_id)
            continue
        if info_id == "vep":
            entries = []
            for a, alt in enumerate(alts, start=1):
                for t in range(rng.randint(1, 3)):
                    values = [""] * len(VEP_FIELDS)
                    values[:8] = [alt, rng.choice(("missense_variant", "synonymous_variant", "intron_variant")),
                                  rng.choice(("MODERATE", "LOW", "MODIFIER")), f"GENE{rng.randint(1, 999)}",
                                  f"ENSG{rng.randint(1, 99999):011d}", "Transcript",
                                  f"ENST{rng.randint(1, 99999):011d}", "protein_coding"]  # fmt: skip
                    values[17], values[19], values[21] = str(a), rng.choice(("1", "-1")), "SNV"
                    entries.append("|".join(values))
            parts.append("vep=" + ",".join(entries))
            continue
        count = {"A": k, "R": k + 1, "1": 1}.get(number, 3)
        if info_id.startswith("AN") and number == "1":
            an = rng.randint(0, 150000)
            parts.append(f"{info_id}={an}")
            continue
        if info_id == "n_alt_alleles":
            parts.append(f"{info_id}={k}")
            continue
        if info_id == "AS_SB_TABLE":
            parts.append(
                f"{info_id}=" + "|".join(f"{rng.randint(0, 40)},{rng.randint(0, 40)}" for _ in range(k + 1))
            )
            continue
        if info_id.startswith("VRS_"):
            values = {"VRS_Allele_IDs": [f"ga4gh:VA.{rng.getrandbits(64):016x}" for _ in range(k + 1)],
                      "VRS_Starts": [str(pos - 1)] * (k + 1), "VRS_Ends": [str(pos)] * (k + 1),
                      "VRS_States": [ref, *alts]}[info_id]  # fmt: skip
            parts.append(f"{info_id}={','.join(values)}")
            continue
        if kind == "Integer":
            values = [str(rng.choice((0, 0, 1, 2, rng.randint(0, 5000)))) for _ in range(count)]
        elif kind == "Float":
            values = [
                rng.choice(("0.00000", f"{rng.random() * 1e-3:.5e}", f"{rng.random():.6f}"))
                for _ in range(count)
            ]
        elif "hist" in info_id:
            values = [_hist(rng, 10 if "age" in info_id else 20) for _ in range(count)]
        else:
            values = [rng.choice(("snv", "ins", "del", "afr", "nfe", "AS_QD")) for _ in range(count)]
        if info_id.startswith("AF") and rng.random() < 0.02:
            continue  # v4 omits AF where AN=0
        parts.append(f"{info_id}={','.join(values)}")
    return ";".join(parts)


class BgzfWriter:
    """Blocks of at most 65280 bytes, each a gzip member with the `BC` extra field (SAM spec §4.1)."""

    def __init__(self, path: Path, level: int = 6):
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.level = level
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= BLOCK:
            self._block(bytes(self.buffer[:BLOCK]))
            del self.buffer[:BLOCK]

    def _block(self, data: bytes) -> None:
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        deflated = compressor.compress(data) + compressor.flush()
        size = len(deflated) + 25 + 1  # header 18, footer 8 → BSIZE = total - 1
        self.handle.write(
            struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2, size - 1)
        )
        self.handle.write(deflated)
        self.handle.write(struct.pack("<II", zlib.crc32(data), len(data)))

    def close(self) -> None:
        if self.buffer:
            self._block(bytes(self.buffer))
        self.handle.write(BGZF_EOF)
        self.handle.close()


def write_gnomad_vcf(
    path: str | Path,
    records: int = 1000,
    seed: int = 11,
    multiallelic_share: float = 0.05,
    indel_share: float = 0.12,
    pool: int = 256,
    level: int = 6,
    frequency_scale: float = 1.0,
) -> Path:
    """Write `records` data lines (a multi-allelic line counts once) as BGZF; returns the path.
    `frequency_scale` multiplies every allele count and frequency: a release in the wrong units."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bodies: dict[int, list[str]] = {1: [], 2: []}
    writer = BgzfWriter(path, level)
    writer.write(header_text().encode())
    contigs = list(CONTIG_LENGTHS)
    per_contig = max(1, records // len(contigs) + 1)
    written = 0
    lines = []
    for contig in contigs:
        pos = 10_000
        for _ in range(per_contig):
            if written == records:
                break
            pos += rng.randint(1, 40)
            ref = rng.choice("ACGT")
            alleles = 2 if rng.random() < multiallelic_share else 1
            alts = []
            for _ in range(alleles):
                if rng.random() < indel_share:
                    insertion = ref + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 6)))
                    alts.append(insertion if insertion not in alts else insertion + "A" * len(insertion))
                else:
                    alts.append(rng.choice([b for b in "ACGT" if b != ref and b not in alts]))
            choices = bodies[alleles]
            if len(choices) < pool:
                choices.append(_info_body(rng, ref, alts, pos, frequency_scale))
            body = rng.choice(choices)
            rsid = f"rs{rng.randint(1, 2_000_000_000)}" if rng.random() < 0.6 else "."
            filters = rng.choice(("PASS", "PASS", "PASS", "AS_VQSR", "AC0;AS_VQSR"))
            qual = "." if rng.random() < 0.9 else f"{rng.random() * 1000:.2f}"
            lines.append(f"{contig}\t{pos}\t{rsid}\t{ref}\t{','.join(alts)}\t{qual}\t{filters}\t{body}\n")
            written += 1
            if len(lines) >= 1000:
                writer.write("".join(lines).encode())
                lines = []
    writer.write("".join(lines).encode())
    writer.close()
    return path
