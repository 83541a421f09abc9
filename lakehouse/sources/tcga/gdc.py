"""The GDC API: find files (`/files` with filters and paging) and download them (`/data/{file_id}`).

Downloads are checked against the API's md5sum, resumed from a `.partial` file with an HTTP Range request,
and retried with exponential back-off on connection errors and 429/5xx answers. The metadata of every file
(case, sample and aliquot barcodes and UUIDs) is written next to the files as `metadata.cart.json`, which
`lakehouse ingest tcga` reads to tie counts files to their samples. The base URL comes from `api=`, else
the `gdc_api_url` setting (`LAKEHOUSE_GDC_API_URL`, default https://api.gdc.cancer.gov).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lakehouse.errors import DataError

FIELDS = (
    "file_id",
    "file_name",
    "md5sum",
    "file_size",
    "data_category",
    "data_type",
    "data_format",
    "analysis.workflow_type",
    "cases.case_id",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.sample_id",
    "cases.samples.submitter_id",
    "cases.samples.sample_type",
    "cases.samples.portions.analytes.aliquots.aliquot_id",
    "cases.samples.portions.analytes.aliquots.submitter_id",
)
PAGE = 500


@dataclass(frozen=True)
class FetchResult:
    out: Path
    files: int
    downloaded: int
    skipped: int
    bytes: int
    metadata: Path


def session(retries: int = 5, backoff: float = 0.5) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def files_filter(projects: list[str], data_types: list[str], workflow: str | None = None) -> dict:
    clauses = [
        {"op": "in", "content": {"field": "cases.project.project_id", "value": list(projects)}},
        {"op": "in", "content": {"field": "data_type", "value": list(data_types)}},
        {"op": "=", "content": {"field": "access", "value": "open"}},
    ]
    if workflow:
        clauses.append({"op": "=", "content": {"field": "analysis.workflow_type", "value": workflow}})
    return {"op": "and", "content": clauses}


def query_files(http, api: str, filters: dict, limit: int | None = None, page: int = PAGE) -> list[dict]:
    """Every file record matching `filters`, paging with from/size until the total is reached."""
    hits: list[dict] = []
    start = 0
    while True:
        size = page if limit is None else min(page, limit - len(hits))
        if size <= 0:
            break
        body = {"filters": filters, "fields": ",".join(FIELDS), "format": "JSON", "from": start, "size": size}
        response = http.post(f"{api}/files", json=body, timeout=60)
        if response.status_code != 200:
            raise DataError(f"GDC {api}/files answered {response.status_code}: {response.text[:200]}")
        data = response.json().get("data", {})
        batch = data.get("hits", [])
        hits += batch
        total = data.get("pagination", {}).get("total", len(hits))
        start += len(batch)
        if not batch or start >= total:
            break
    return hits


def download(http, api: str, record: dict, out: Path, chunk: int = 1 << 20) -> tuple[Path, bool]:
    """Download one file to `out/<file_id>/<file_name>`; returns (path, downloaded_now)."""
    target = out / record["file_id"] / record["file_name"]
    if target.exists() and _md5(target) == record.get("md5sum"):
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    for _attempt in range(3):
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with http.get(
                f"{api}/data/{record['file_id']}", headers=headers, stream=True, timeout=120
            ) as response:
                if response.status_code == 416:  # asked past the end: what we have is everything
                    pass
                elif response.status_code not in (200, 206):
                    raise DataError(
                        f"GDC {api}/data/{record['file_id']} answered {response.status_code} for {record['file_name']}"
                    )
                else:
                    mode = "ab" if response.status_code == 206 else "wb"  # 200: the server ignored Range
                    with open(partial, mode) as handle:
                        handle.writelines(response.iter_content(chunk))
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            continue  # resume from what arrived
        expected = record.get("md5sum")
        if expected is None or _md5(partial) == expected:
            partial.replace(target)
            return target, True
        if record.get("file_size") and partial.stat().st_size < record["file_size"]:
            continue
        partial.unlink()  # complete but wrong: start again from zero
    raise DataError(
        f"{record['file_name']} ({record['file_id']}): download did not match md5 {record.get('md5sum')} after "
        "3 attempts; run the fetch again to resume"
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_files(
    projects: list[str],
    data_types: list[str],
    out: str | Path,
    workflow: str | None = None,
    limit: int | None = None,
    api: str | None = None,
    http: requests.Session | None = None,
    chunk: int = 1 << 20,
) -> FetchResult:
    from lakehouse.settings import Settings

    api = (api or Settings.load().gdc_api_url).rstrip("/")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    http = http or session()
    records = query_files(http, api, files_filter(projects, data_types, workflow), limit)
    metadata = out / "metadata.cart.json"
    metadata.write_text(json.dumps(records, indent=1))
    downloaded = skipped = size = 0
    for record in records:
        path, fresh = download(http, api, record, out, chunk)
        downloaded += fresh
        skipped += not fresh
        size += path.stat().st_size
    return FetchResult(out, len(records), downloaded, skipped, size, metadata)
