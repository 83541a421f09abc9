"""Shared by the benchmarks, which run on demand (`make bench`, or `pytest tests/benchmarks/FILE -s`).

Fixtures (`spark`, `settings`) come from tests/conftest.py; results go to tests/benchmarks/results/*.json.
"""

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(json.dumps(payload, indent=2, default=str))
    return path
