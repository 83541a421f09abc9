"""`lakehouse fetch tcga` against a local HTTP server that answers like the GDC API (files, data)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from lakehouse.errors import DataError
from lakehouse.sources.tcga.gdc import fetch_files, session

GENE_LINE = "ENSG00000000003.15\tTSPAN6\tprotein_coding\t7\n"
FILES = {
    f"0000000{i}-aaaa-bbbb-cccc-00000000000{i}": (
        f"sample{i}.rna_seq.augmented_star_gene_counts.tsv",
        (
            "# gene-model: GENCODE v36\ngene_id\tgene_name\tgene_type\tunstranded\n" + GENE_LINE * (200 * i)
        ).encode(),
    )
    for i in range(1, 4)
}


class GdcHandler(BaseHTTPRequestHandler):
    queries: ClassVar[list[dict]] = []
    data_requests: ClassVar[list[tuple[str, str | None]]] = []
    faults: ClassVar[dict[str, list[str]]] = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        assert self.path == "/files"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        GdcHandler.queries.append(body)
        records = [
            {
                "file_id": fid,
                "file_name": name,
                "md5sum": hashlib.md5(content).hexdigest(),
                "file_size": len(content),
                "data_type": "Gene Expression Quantification",
                "cases": [
                    {
                        "submitter_id": f"TCGA-A1-A0S{n}",
                        "case_id": f"case-{n}",
                        "project": {"project_id": "TCGA-BRCA"},
                        "samples": [
                            {
                                "submitter_id": f"TCGA-A1-A0S{n}-01A",
                                "sample_type": "Primary Tumor",
                                "portions": [
                                    {
                                        "analytes": [
                                            {
                                                "aliquots": [
                                                    {
                                                        "submitter_id": f"TCGA-A1-A0S{n}-01A-11R-A000-07",
                                                        "aliquot_id": f"al-{n}",
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
            for n, (fid, (name, content)) in enumerate(sorted(FILES.items()), start=1)
        ]
        start, size = body["from"], body["size"]
        payload = {
            "data": {
                "hits": records[start : start + size],
                "pagination": {"total": len(records), "from": start, "size": size},
            }
        }
        self._send(200, json.dumps(payload).encode(), "application/json")

    def do_GET(self):
        file_id = self.path.rsplit("/", 1)[-1]
        rng = self.headers.get("Range")
        GdcHandler.data_requests.append((file_id, rng))
        _name, content = FILES[file_id]
        fault = GdcHandler.faults.get(file_id, [])
        if fault:
            kind = fault.pop(0)
            if kind == "503":
                self._send(503, b"busy", "text/plain")
                return
            if kind == "cut":  # promise everything, send half, drop the connection
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content[: len(content) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if kind == "corrupt":
                self._send(200, b"x" * len(content), "text/plain")
                return
        if rng:
            offset = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {offset}-{len(content) - 1}/{len(content)}")
            self.send_header("Content-Length", str(len(content) - offset))
            self.end_headers()
            self.wfile.write(content[offset:])
            return
        self._send(200, content, "text/tab-separated-values")

    def _send(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def gdc_api():
    GdcHandler.queries, GdcHandler.data_requests, GdcHandler.faults = [], [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), GdcHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_pages_checks_md5_resumes_and_retries(gdc_api, tmp_path, monkeypatch):
    ids = sorted(FILES)
    GdcHandler.faults = {ids[0]: ["503", "503"], ids[1]: ["cut"]}
    monkeypatch.setenv("LAKEHOUSE_GDC_API_URL", gdc_api)
    result = fetch_files(
        ["TCGA-BRCA"], ["Gene Expression Quantification"], tmp_path, http=session(backoff=0.01), chunk=1024
    )
    assert (result.files, result.downloaded, result.skipped) == (3, 3, 0)
    # One page (500 by default); the filter names the project and data type.
    query = GdcHandler.queries[0]
    assert query["from"] == 0 and "cases.samples.portions.analytes.aliquots.submitter_id" in query["fields"]
    assert query["filters"]["content"][0]["content"] == {
        "field": "cases.project.project_id",
        "value": ["TCGA-BRCA"],
    }
    for fid, (name, content) in FILES.items():
        assert (tmp_path / fid / name).read_bytes() == content
        assert not (tmp_path / fid / f"{name}.partial").exists()
    # 503 twice, then served (urllib3 retry); cut mid-body, then resumed with a Range request.
    assert [r for r in GdcHandler.data_requests if r[0] == ids[0]] == [(ids[0], None)] * 3
    cut = [r for r in GdcHandler.data_requests if r[0] == ids[1]]
    half = len(FILES[ids[1]][1]) // 2
    # What arrived in whole chunks is kept: the second request asks only for the rest.
    assert cut == [(ids[1], None), (ids[1], f"bytes={half // 1024 * 1024}-")]
    metadata = json.loads(result.metadata.read_text())
    assert [m["file_id"] for m in metadata] == ids
    # A second fetch finds everything present and downloads nothing.
    again = fetch_files(["TCGA-BRCA"], ["Gene Expression Quantification"], tmp_path, api=gdc_api)
    assert (again.downloaded, again.skipped) == (0, 3)


def test_fetch_pages_with_from_and_size(gdc_api, tmp_path):
    from lakehouse.sources.tcga.gdc import files_filter, query_files

    hits = query_files(
        session(), gdc_api, files_filter(["TCGA-BRCA"], ["Gene Expression Quantification"]), page=2
    )
    assert len(hits) == 3
    assert [(q["from"], q["size"]) for q in GdcHandler.queries] == [(0, 2), (2, 2)]
    limited = query_files(session(), gdc_api, files_filter(["TCGA-BRCA"], ["x"]), limit=1)
    assert len(limited) == 1


def test_fetch_refuses_a_file_that_never_matches_its_md5(gdc_api, tmp_path):
    fid = sorted(FILES)[2]
    GdcHandler.faults = {fid: ["corrupt", "corrupt", "corrupt"]}
    with pytest.raises(
        DataError,
        match=rf"sample3.rna_seq.augmented_star_gene_counts.tsv \({fid}\): download did not match md5",
    ):
        fetch_files(["TCGA-BRCA"], ["Gene Expression Quantification"], tmp_path, api=gdc_api)
