"""Make GX Data Docs work offline: their pages load jQuery, Bootstrap, Vega … from public CDNs.

On a cluster without internet access those pages break (`$ is not defined`). Every one of those assets is a
public npm package, so after each Data Docs build the CDN URLs are rewritten to copies vendored into the site
(`static/vendor/<package>@<version>/…`), fetched once with the ordinary npm client (`npm pack`) into the
lakehouse cache. Without npm the pages keep their CDN URLs and a warning says so.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

# CDN layouts GX uses → (npm package, version, path inside the package).
_CDNJS_PACKAGES = {
    "font-awesome": ("@fortawesome/fontawesome-free", ""),
    "bootstrap-datepicker": ("bootstrap-datepicker", "dist/"),
    "popper.js": ("popper.js", "dist/"),
}
_DEFAULT_FILES = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}
_URL = re.compile(r'(?P<attr>src|href)="(?P<url>https://[^"]+)"')
_CSS_URL = re.compile(r"""url\(\s*['"]?(?P<ref>[^'")?#]+)""")


def npm_asset(url: str) -> tuple[str, str, str] | None:
    """The (package, version, path) an asset URL points at, or None when it is not a known CDN layout."""
    if m := re.match(
        r"https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/(@?[^@/]+(?:/[^@/]+)?)@([^/]+)(?:/(.*))?$", url
    ):
        package, version, path = m.group(1), m.group(2), m.group(3) or _DEFAULT_FILES.get(m.group(1), "")
        return (package, version, path) if path else None
    m = re.match(r"https://cdnjs\.cloudflare\.com/ajax/libs/([^/]+)/([^/]+)/(.+)$", url)
    if m and m.group(1) in _CDNJS_PACKAGES:
        package, prefix = _CDNJS_PACKAGES[m.group(1)]
        return package, m.group(2), prefix + m.group(3)
    if m := re.match(r"https://code\.jquery\.com/jquery-([\d.]+)(\.min)?\.js$", url):
        return "jquery", m.group(1), f"dist/jquery{m.group(2) or ''}.js"
    if m := re.match(r"https://(?:maxcdn|stackpath)\.bootstrapcdn\.com/bootstrap/([\d.]+)/(.+)$", url):
        return "bootstrap", m.group(1), f"dist/{m.group(2)}"
    return None


def _fetch(package: str, version: str, cache_dir: Path) -> Path | None:
    target = cache_dir / "npm" / f"{package.replace('/', '__')}@{version}"
    if (target / "package.json").exists():
        return target
    npm = shutil.which("npm")
    if not npm:
        return None
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--pack-destination", work, "--silent"],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarballs = list(Path(work).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            log.warning("npm pack %s@%s failed: %s", package, version, proc.stderr.strip()[:200])
            return None
        staging = Path(work) / "x"
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(staging, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging / "package"), target)
    return target


def vendor_files(source: Path, path: str) -> list[str]:
    """The files of the package at `source` that its asset `path` needs: itself and, for a stylesheet, the
    files it refers to with `url(...)` (fonts, images), as paths inside the package. Copying only those
    into a new site takes milliseconds; copying the packages whole (4,300 files, 85 MB) took 2.4 s."""
    needed = [path]
    if path.endswith(".css"):
        base = PurePosixPath(path).parent
        for ref in _CSS_URL.findall((source / path).read_text(errors="replace")):
            if not ref.startswith(("data:", "http:", "https:", "//", "/")):
                needed.append(os.path.normpath(str(base / ref)))
    return [p for p in dict.fromkeys(needed) if not p.startswith("..") and (source / p).is_file()]


def localize_site(site: Path, cache_dir: Path, since: float | None = None) -> int:
    """Rewrite CDN asset URLs in the pages of `site` (those written at or after `since`, a time.time(),
    when given) to vendored copies; returns the URLs rewritten."""
    vendor = site / "static" / "vendor"
    resolved: dict[str, str | None] = {}
    rewritten = 0
    for page in site.rglob("*.html"):
        if since is not None and page.stat().st_mtime < since:
            continue
        text = page.read_text()
        depth = len(page.relative_to(site).parts) - 1

        def replace(match: re.Match, depth: int = depth) -> str:
            nonlocal rewritten
            url = match.group("url")
            if url not in resolved:
                resolved[url] = None
                asset = npm_asset(url)
                if asset:
                    package, version, path = asset
                    source = _fetch(package, version, cache_dir)
                    if source and (source / path).is_file():
                        name = f"{package.replace('/', '__')}@{version}"
                        for needed in vendor_files(source, path):
                            if not (vendor / name / needed).exists():
                                (vendor / name / needed).parent.mkdir(parents=True, exist_ok=True)
                                shutil.copyfile(source / needed, vendor / name / needed)
                        resolved[url] = f"static/vendor/{name}/{path}"
            if resolved[url] is None:
                return match.group(0)
            rewritten += 1
            return f'{match.group("attr")}="{"../" * depth}{resolved[url]}"'

        new = _URL.sub(replace, text)
        if new != text:
            page.write_text(new)
    missing = sorted(u for u, local in resolved.items() if local is None and npm_asset(u))
    if missing:
        log.warning(
            "Data Docs still load %d assets from CDNs (npm unavailable?): %s", len(missing), missing[:3]
        )
    return rewritten
