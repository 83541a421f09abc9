"""GEO accessions → local files: GEO's public HTTPS file layout, cached under `<cache_dir>/geo/`.

GSE → `geo/series/GSE99nnn/GSE99709/soft/GSE99709_family.soft.gz`, GPL → `geo/platforms/…/soft/
GPL96_family.soft.gz`, GDS → `geo/datasets/…/soft/GDS507.soft.gz`; a GSM has no file of its own in that
layout, so it comes from GEO's query service (`acc.cgi?acc=GSM…&targ=self&form=text&view=full`).
The settings `geo_base_url` (default https://ftp.ncbi.nlm.nih.gov) and `geo_query_url` point them
elsewhere (a mirror, or a test server); `geo_cache_dir` moves the cache. Downloads go to a temporary file and are kept only when the size
matches the server's Content-Length (and a gzip body reads to its end); a SHA-256 is stored beside each
cached file and checked on every later use. Transient HTTP failures are retried by urllib3.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

from lakehouse.errors import DataError
from lakehouse.settings import DEFAULT_GEO_BASE_URL, DEFAULT_GEO_QUERY_URL

DEFAULT_BASE_URL = DEFAULT_GEO_BASE_URL
DEFAULT_QUERY_URL = DEFAULT_GEO_QUERY_URL
ACCESSION = re.compile(r"^(GSE|GSM|GPL|GDS)(\d+)$", re.IGNORECASE)
FOLDERS = {"GSE": "series", "GPL": "platforms", "GDS": "datasets"}


def is_accession(text: str) -> bool:
    return bool(ACCESSION.match(text.strip()))


def accession_url(
    accession: str, base_url: str | None = None, query_url: str | None = None
) -> tuple[str, str]:
    """(URL, local file name) of the SOFT file GEO publishes for `accession`."""
    match = ACCESSION.match(accession.strip())
    if not match:
        raise DataError(f"{accession!r} is not a GEO accession (GSE…, GSM…, GPL… or GDS… followed by digits)")
    prefix, digits = match.group(1).upper(), match.group(2)
    accession = f"{prefix}{digits}"
    if prefix == "GSM":
        query = query_url or DEFAULT_QUERY_URL
        return f"{query}?acc={accession}&targ=self&form=text&view=full", f"{accession}.soft"
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    stub = f"{prefix}{digits[:-3]}nnn" if len(digits) > 3 else f"{prefix}nnn"
    name = f"{accession}.soft.gz" if prefix == "GDS" else f"{accession}_family.soft.gz"
    return f"{base}/geo/{FOLDERS[prefix]}/{stub}/{accession}/soft/{name}", name


def _session():
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(accession: str, folder: Path, base_url: str | None = None, query_url: str | None = None) -> Path:
    """The SOFT file of `accession` in the cache `folder`, downloading it first if absent or damaged."""
    url, name = accession_url(accession, base_url, query_url)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target, checksum = folder / name, folder / f"{name}.sha256"
    if target.exists() and checksum.exists() and checksum.read_text().strip() == _sha256(target):
        return target
    partial = folder / f"{name}.part"
    try:
        with _session().get(url, stream=True, timeout=(10, 120)) as response:
            if response.status_code != 200:
                raise DataError(
                    f"{accession}: GET {url} answered HTTP {response.status_code}; check the accession"
                )
            expected = response.headers.get("Content-Length")
            size = 0
            with open(partial, "wb") as handle:
                for block in response.iter_content(1 << 20):
                    handle.write(block)
                    size += len(block)
        if expected is not None and int(expected) != size:
            raise DataError(f"{accession}: {url} sent {size} bytes of {expected}; run the command again")
        with open(partial, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        if gzipped:
            try:
                with gzip.open(partial) as stream:
                    while stream.read(1 << 22):
                        pass
            except (OSError, EOFError) as exc:
                raise DataError(
                    f"{accession}: {url} is a damaged gzip file ({exc}); run the command again"
                ) from exc
        checksum.write_text(_sha256(partial) + "\n")
        partial.replace(target)
    except DataError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as exc:  # requests' connection errors after urllib3's retries
        partial.unlink(missing_ok=True)
        raise DataError(f"{accession}: cannot download {url} ({exc.__class__.__name__}: {exc})") from exc
    return target
