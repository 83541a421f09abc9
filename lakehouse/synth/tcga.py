"""A synthetic TCGA cohort in the GDC's real file formats, with a planted biological signal.

Files written under OUT (the layout `gdc-client` and the GDC portal produce):

- `<file_id>/<uuid>.rna_seq.augmented_star_gene_counts.tsv` — STAR augmented counts per tumour (and some
  normal) aliquot: `# gene-model` line, header, four `N_*` rows, then genes with versioned Ensembl IDs;
- `<project>.somatic.maf.gz` — one GDC-style MAF per project (`#version gdc-1.0.0`, aliquot barcodes, UUIDs);
- `clinical.tsv` — the portal's clinical export: `'--` for missing, one row per case *and treatment*;
- `gdc_sample_sheet.tsv` and `metadata.cart.json` — what ties each counts file to its sample and aliquot.
- `.synthetic_truth.json` — the planted signal (hidden, so ingesting OUT does not read it).

The signal, learnable but not trivial: each project is a subtype with its own expression programme (a few
percent of genes shifted by ±0.5–1.2 log units against per-gene noise of 0.6); driver mutations (TP53, KRAS,
PIK3CA…) occur at subtype-specific rates, shift the expression of their target genes and raise the hazard
of death (TP53 ×2.2, KRAS ×1.5) on top of a subtype effect and age. Same seed, same bytes.
"""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROJECTS = ("TCGA-BRCA", "TCGA-LUAD", "TCGA-COAD", "TCGA-GBM")
DIAGNOSES = {
    "TCGA-BRCA": "Infiltrating duct carcinoma, NOS",
    "TCGA-LUAD": "Adenocarcinoma, NOS",
    "TCGA-COAD": "Adenocarcinoma, NOS",
    "TCGA-GBM": "Glioblastoma",
}
TSS = {
    "TCGA-BRCA": ("A1", "A2", "BH"),
    "TCGA-LUAD": ("05", "44", "55"),
    "TCGA-COAD": ("AA", "A6", "CM"),
    "TCGA-GBM": ("06", "14", "19"),
}
# Driver → (mutation rate per project, hazard ratio, expression shift of its targets in log units).
DRIVERS = {
    "TP53": ({"TCGA-BRCA": 0.35, "TCGA-LUAD": 0.5, "TCGA-COAD": 0.55, "TCGA-GBM": 0.3}, 2.2, -0.9),
    "KRAS": ({"TCGA-BRCA": 0.02, "TCGA-LUAD": 0.3, "TCGA-COAD": 0.42, "TCGA-GBM": 0.01}, 1.5, 0.8),
    "PIK3CA": ({"TCGA-BRCA": 0.35, "TCGA-LUAD": 0.05, "TCGA-COAD": 0.18, "TCGA-GBM": 0.1}, 1.0, 0.7),
    "EGFR": ({"TCGA-BRCA": 0.02, "TCGA-LUAD": 0.14, "TCGA-COAD": 0.02, "TCGA-GBM": 0.3}, 1.3, 1.0),
    "APC": ({"TCGA-BRCA": 0.02, "TCGA-LUAD": 0.04, "TCGA-COAD": 0.75, "TCGA-GBM": 0.01}, 1.0, 0.6),
}
SUBTYPE_HAZARD = {"TCGA-BRCA": 0.6, "TCGA-LUAD": 1.2, "TCGA-COAD": 0.9, "TCGA-GBM": 3.0}
CLASSIFICATIONS = (
    ("Missense_Mutation", 0.62, "SNP"),
    ("Silent", 0.2, "SNP"),
    ("Nonsense_Mutation", 0.06, "SNP"),
    ("Frame_Shift_Del", 0.04, "DEL"),
    ("Frame_Shift_Ins", 0.02, "INS"),
    ("Splice_Site", 0.03, "SNP"),
    ("In_Frame_Del", 0.03, "DEL"),
)
MAF_COLUMNS = (
    "Hugo_Symbol",
    "Entrez_Gene_Id",
    "Center",
    "NCBI_Build",
    "Chromosome",
    "Start_Position",
    "End_Position",
    "Strand",
    "Variant_Classification",
    "Variant_Type",
    "Reference_Allele",
    "Tumor_Seq_Allele1",
    "Tumor_Seq_Allele2",
    "dbSNP_RS",
    "dbSNP_Val_Status",
    "Tumor_Sample_Barcode",
    "Matched_Norm_Sample_Barcode",
    "Match_Norm_Seq_Allele1",
    "Match_Norm_Seq_Allele2",
    "Tumor_Sample_UUID",
    "Matched_Norm_Sample_UUID",
    "HGVSc",
    "HGVSp",
    "HGVSp_Short",
    "Transcript_ID",
    "Exon_Number",
    "t_depth",
    "t_ref_count",
    "t_alt_count",
    "n_depth",
    "n_ref_count",
    "n_alt_count",
    "all_effects",
    "Allele",
    "Gene",
    "Feature",
    "Feature_type",
    "One_Consequence",
    "Consequence",
    "IMPACT",
    "callers",
    "hotspot",
)
CLINICAL_COLUMNS = (
    "case_id",
    "case_submitter_id",
    "project_id",
    "age_at_index",
    "days_to_birth",
    "days_to_death",
    "ethnicity",
    "gender",
    "race",
    "vital_status",
    "age_at_diagnosis",
    "ajcc_pathologic_stage",
    "days_to_last_follow_up",
    "primary_diagnosis",
    "tissue_or_organ_of_origin",
    "treatment_or_therapy",
    "treatment_type",
)
BASES = np.array(list("ACGT"))


@dataclass(frozen=True)
class SynthTcga:
    out: Path
    cases: int
    genes: int
    counts_files: int
    mutations: int


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _gene_table(rng, genes: int):
    drivers = list(DRIVERS)
    names = (
        drivers + [f"SYN{i:05d}" for i in range(genes - len(drivers))]
        if genes > len(drivers)
        else drivers[:genes]
    )
    ids = [f"ENSG{90000000000 + i * 17:011d}.{int(v)}" for i, v in enumerate(rng.integers(1, 20, len(names)))]
    types = rng.choice(
        ["protein_coding", "lncRNA", "processed_pseudogene"], size=len(names), p=[0.7, 0.2, 0.1]
    )
    types[: len(drivers)] = "protein_coding"
    lengths = rng.integers(600, 9000, len(names))
    chromosomes = rng.integers(1, 23, len(names))
    starts = rng.integers(1_000_000, 200_000_000, len(names))
    return names, ids, types, lengths, chromosomes, starts


def generate_tcga(
    out: str | Path,
    cases: int = 12,
    genes: int = 200,
    seed: int = 5,
    projects: int = 3,
    normal_fraction: float = 0.15,
) -> SynthTcga:
    """Write a cohort of `cases` participants over `projects` (2–4) projects with `genes` genes into `out`."""
    if not 2 <= projects <= len(PROJECTS):
        raise ValueError(f"projects must be between 2 and {len(PROJECTS)}")
    if genes < len(DRIVERS) + 10:
        raise ValueError(f"genes must be at least {len(DRIVERS) + 10} (drivers and their targets)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chosen = PROJECTS[:projects]
    names, ids, types, lengths, chromosomes, starts = _gene_table(rng, genes)
    n = len(names)
    base = rng.normal(2.5, 1.8, n)  # log mean expression per gene
    programme = {}
    for project in chosen:
        shift = np.zeros(n)
        picked = rng.choice(np.arange(len(DRIVERS), n), size=max(3, n // 25), replace=False)
        shift[picked] = rng.choice([-1, 1], picked.size) * rng.uniform(0.5, 1.2, picked.size)
        programme[project] = shift
    targets = {
        d: rng.choice(np.arange(len(DRIVERS), n), size=max(2, n // 50), replace=False) for d in DRIVERS
    }

    truth_cases = []
    sheet_rows, metadata, maf_rows = [], [], {p: [] for p in chosen}
    clinical_rows = []
    counts_files = 0
    used = set()
    for index in range(cases):
        project = chosen[index % len(chosen)] if index < len(chosen) else str(rng.choice(chosen))
        while True:
            participant = f"{rng.choice(TSS[project])}-{int(rng.integers(0, 36**4)):04X}"[:7]
            case = f"TCGA-{participant}"
            if case not in used and len(case) == 12:
                used.add(case)
                break
        case_id = _uuid(rng)
        plate = f"A{int(rng.integers(0, 36**3)):03X}"[:4]
        tumour_dna = f"{case}-01A-11D-{plate}-08"
        normal_dna = f"{case}-10A-01D-{plate}-08"
        tumour_rna = f"{case}-01A-11R-{plate}-07"
        ids_uuid = {b: _uuid(rng) for b in (tumour_dna, normal_dna, tumour_rna)}
        mutated = {d: bool(rng.random() < DRIVERS[d][0][project]) for d in DRIVERS}
        age = int(np.clip(rng.normal(60, 12), 25, 90))
        hazard = SUBTYPE_HAZARD[project] * np.exp(0.03 * (age - 60))
        for driver, is_mut in mutated.items():
            if is_mut:
                hazard *= DRIVERS[driver][1]
        event_time = rng.exponential(2000 / hazard)
        censor = rng.uniform(200, 4000)
        dead = event_time <= censor
        follow_up = int(min(event_time, censor))
        truth_cases.append(
            {
                "case": case,
                "project": project,
                "drivers": [d for d, m in mutated.items() if m],
                "age": age,
                "hazard": float(hazard),
                "dead": bool(dead),
                "days": follow_up,
            }
        )
        gender = "female" if project == "TCGA-BRCA" or rng.random() < 0.5 else "male"
        stage = str(rng.choice(["Stage I", "Stage IIA", "Stage IIB", "Stage IIIA", "Stage IV", "'--"]))
        birthday = int(rng.integers(0, 365))
        for treatment in ("Pharmaceutical Therapy, NOS", "Radiation Therapy, NOS"):
            clinical_rows.append(
                {
                    "case_id": case_id,
                    "case_submitter_id": case,
                    "project_id": project,
                    "age_at_index": str(age),
                    "days_to_birth": str(-age * 365 - birthday),
                    "days_to_death": str(follow_up) if dead else "'--",
                    "ethnicity": str(
                        rng.choice(["not hispanic or latino", "hispanic or latino", "not reported"])
                    ),
                    "gender": gender,
                    "race": str(rng.choice(["white", "black or african american", "asian", "not reported"])),
                    "vital_status": "Dead" if dead else "Alive",
                    "age_at_diagnosis": str(age * 365 + 100),
                    "ajcc_pathologic_stage": stage if project != "TCGA-GBM" else "'--",
                    # The portal repeats a case per treatment; the follow-up of the second row is the later one.
                    "days_to_last_follow_up": "'--"
                    if dead
                    else str(follow_up if "Radiation" in treatment else max(0, follow_up - 90)),
                    "primary_diagnosis": DIAGNOSES[project],
                    "tissue_or_organ_of_origin": "'--",
                    "treatment_or_therapy": str(rng.choice(["yes", "no", "not reported"])),
                    "treatment_type": treatment,
                }
            )
        # Mutations: background plus drivers, in the project MAF.
        mutated_genes = [d for d, m in mutated.items() if m]
        background = rng.integers(len(DRIVERS), n, int(rng.poisson(12)))
        for gene_index in [names.index(d) for d in mutated_genes] + sorted(set(background.tolist())):
            maf_rows[project].append(
                _maf_row(rng, names, ids, chromosomes, starts, gene_index, tumour_dna, normal_dna, ids_uuid)
            )
        # Expression: tumour, and for some cases a solid-tissue normal.
        aliquots = [(tumour_rna, "Primary Tumor", True)]
        if rng.random() < normal_fraction:
            aliquots.append((f"{case}-11A-01R-{plate}-07", "Solid Tissue Normal", False))
            ids_uuid[aliquots[-1][0]] = _uuid(rng)
        for aliquot, sample_type, tumour in aliquots:
            log_mean = base + rng.normal(0, 0.6, n)
            if tumour:
                log_mean = log_mean + programme[project]
                for driver in mutated_genes:
                    log_mean[targets[driver]] += DRIVERS[driver][2]
            file_id = _uuid(rng)
            file_name = f"{_uuid(rng)}.rna_seq.augmented_star_gene_counts.tsv"
            _write_star(rng, out / file_id / file_name, names, ids, types, lengths, log_mean)
            counts_files += 1
            sample = aliquot[:16]
            sheet_rows.append(
                (
                    file_id,
                    file_name,
                    "Transcriptome Profiling",
                    "Gene Expression Quantification",
                    project,
                    case,
                    sample,
                    sample_type,
                )
            )
            metadata.append(
                {
                    "file_id": file_id,
                    "file_name": file_name,
                    "data_category": "Transcriptome Profiling",
                    "data_type": "Gene Expression Quantification",
                    "analysis": {"workflow_type": "STAR - Counts"},
                    "md5sum": None,
                    "file_size": (out / file_id / file_name).stat().st_size,
                    "cases": [
                        {
                            "case_id": case_id,
                            "submitter_id": case,
                            "project": {"project_id": project},
                            "samples": [
                                {
                                    "sample_id": _uuid(rng),
                                    "submitter_id": sample,
                                    "sample_type": sample_type,
                                    "portions": [
                                        {
                                            "analytes": [
                                                {
                                                    "aliquots": [
                                                        {
                                                            "aliquot_id": ids_uuid[aliquot],
                                                            "submitter_id": aliquot,
                                                        }
                                                    ]
                                                }
                                            ]
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            )
    for record in metadata:
        import hashlib

        path = out / record["file_id"] / record["file_name"]
        record["md5sum"] = hashlib.md5(path.read_bytes()).hexdigest()
    for project, rows in maf_rows.items():
        if rows:
            _write_maf(out / f"{project}.somatic.maf.gz", rows)
    with open(out / "gdc_sample_sheet.tsv", "w") as handle:
        handle.write(
            "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type\n"
        )
        handle.writelines("\t".join(row) + "\n" for row in sheet_rows)
    (out / "metadata.cart.json").write_text(json.dumps(metadata, indent=1))
    with open(out / "clinical.tsv", "w") as handle:
        handle.write("\t".join(CLINICAL_COLUMNS) + "\n")
        handle.writelines("\t".join(row[c] for c in CLINICAL_COLUMNS) + "\n" for row in clinical_rows)
    truth = {
        "seed": seed,
        "cases": truth_cases,
        "drivers": {
            d: {
                "hazard_ratio": v[1],
                "target_shift": v[2],
                "targets": [ids[i].split(".")[0] for i in targets[d]],
            }
            for d, v in DRIVERS.items()
        },
        "programmes": {p: [ids[i].split(".")[0] for i in np.flatnonzero(s)] for p, s in programme.items()},
    }
    (out / ".synthetic_truth.json").write_text(json.dumps(truth, indent=1))
    return SynthTcga(out, cases, n, counts_files, sum(len(r) for r in maf_rows.values()))


def _maf_row(rng, names, ids, chromosomes, starts, gene_index, tumour, normal, uuids) -> list[str]:
    weights = np.array([c[1] for c in CLASSIFICATIONS])
    classification, _, variant_type = CLASSIFICATIONS[
        int(rng.choice(len(CLASSIFICATIONS), p=weights / weights.sum()))
    ]
    position = int(starts[gene_index] + rng.integers(0, 50_000))
    ref = str(rng.choice(BASES))
    if variant_type == "SNP":
        alt = str(rng.choice([b for b in "ACGT" if b != ref]))
        end = position
    elif variant_type == "DEL":
        ref = "".join(rng.choice(BASES, int(rng.integers(1, 4))))
        alt, end = "-", position + len(ref) - 1
    else:
        ref, alt, end = "-", "".join(rng.choice(BASES, int(rng.integers(1, 3)))), position + 1
    depth = int(rng.integers(30, 300))
    alt_count = int(depth * rng.uniform(0.08, 0.6))
    n_depth = int(rng.integers(20, 150))
    protein = int(rng.integers(10, 900))
    gene_id = ids[gene_index].split(".")[0]
    transcript = f"ENST{int(gene_id[4:]) + 1:011d}"
    return [
        names[gene_index],
        "0",
        "BI;WUGSC",
        "GRCh38",
        f"chr{chromosomes[gene_index]}",
        str(position),
        str(end),
        "+",
        classification,
        variant_type,
        ref,
        ref,
        alt,
        ".",
        "",
        tumour,
        normal,
        ref,
        ref,
        uuids[tumour],
        uuids[normal],
        f"c.{protein * 3}{ref}>{alt}",
        f"p.Xaa{protein}Yaa",
        f"p.X{protein}Y",
        transcript,
        f"{int(rng.integers(1, 20))}/20",
        str(depth),
        str(depth - alt_count),
        str(alt_count),
        str(n_depth),
        str(n_depth),
        "0",
        f"{names[gene_index]},missense_variant,p.X{protein}Y,{transcript},",
        alt,
        gene_id,
        transcript,
        "Transcript",
        "missense_variant",
        "missense_variant",
        "MODERATE",
        "muse;mutect2;varscan2",
        "N",
    ]


def _write_maf(path: Path, rows: list[list[str]]) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as raw:
        text = "#version gdc-1.0.0\n#filedate 20240101\n#annotation.spec gdc-2.0.0-aliquot-merged-masked\n"
        text += "\t".join(MAF_COLUMNS) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
        raw.write(text.encode())


def _write_star(rng, path: Path, names, ids, types, lengths, log_mean) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    library = rng.uniform(2e7, 6e7)
    weights = np.exp(log_mean) * lengths
    expected = library * weights / weights.sum()
    # Negative binomial counts (overdispersion 0.1), as RNA-seq counts are.
    counts = rng.poisson(rng.gamma(10.0, expected / 10.0))
    first = rng.binomial(counts, 0.02)
    second = counts - rng.binomial(counts, 0.03)
    rate = counts / (lengths / 1e3)
    tpm = rate / max(rate.sum(), 1) * 1e6
    fpkm = counts / (lengths / 1e3) / (max(counts.sum(), 1) / 1e6)
    upper = np.percentile(counts[counts > 0], 75) if (counts > 0).any() else 1
    fpkm_uq = counts / (lengths / 1e3) / (upper * len(counts) / 1e6) * 1e3
    total = int(counts.sum())
    header = (
        "# gene-model: GENCODE v36\ngene_id\tgene_name\tgene_type\tunstranded\tstranded_first\t"
        "stranded_second\ttpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n"
    )
    summary = "".join(
        f"{name}\t\t\t{v}\t{v}\t{v}\t\t\t\n"
        for name, v in (
            ("N_unmapped", int(total * 0.02)),
            ("N_multimapping", int(total * 0.05)),
            ("N_noFeature", int(total * 0.1)),
            ("N_ambiguous", int(total * 0.01)),
        )
    )
    body = "".join(
        f"{ids[i]}\t{names[i]}\t{types[i]}\t{counts[i]}\t{first[i]}\t{second[i]}\t{tpm[i]:.4f}\t{fpkm[i]:.4f}\t"
        f"{fpkm_uq[i]:.4f}\n"
        for i in range(len(names))
    )
    path.write_text(header + summary + body)
