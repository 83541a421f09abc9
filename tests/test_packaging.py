"""The lake as a user installs it: a wheel with its declarations, specs and templates, installed into a fresh
venv at the locked versions, running the demo stage from a directory that is not the checkout."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import lakehouse_env

from lakehouse.runs import LOCK, lock_drift, lock_pins

ROOT = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"
DOCKERFILE = ROOT / "Dockerfile"


def test_lock_pins_follow_markers_and_drift_names_each_difference():
    text = (
        "numpy==2.3.0 \\\n    --hash=sha256:00\n"
        "pywin32==312 ; sys_platform == 'win32' \\\n    --hash=sha256:11\n"
        "Typing_Extensions==4.15.0 ; python_full_version >= '3.11' \\\n"
        "pyarrow==25.0.0\n"
        "    # via lakehouse\n"
    )
    pins = lock_pins(text)
    assert pins == {"numpy": "2.3.0", "typing-extensions": "4.15.0", "pyarrow": "25.0.0"}  # no win32 pin
    assert lock_drift(pins, {"numpy": "2.3.0", "typing-extensions": "4.15.0", "pyarrow": "25.0"}) == ()
    assert lock_drift(pins, {"numpy": "2.3.1", "typing-extensions": "4.15.0"}) == (
        "numpy 2.3.1 (locked 2.3.0)",
        "pyarrow missing (locked 25.0.0)",
    )


def packaged_files() -> set[str]:
    """Every declaration, experiment spec and config file in the checkout, as wheel paths."""
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lakehouse" / "schemas").glob("*/*.yaml")}
    found |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "ml" / "specs").glob("*.yaml")}
    found |= {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "lakehouse" / "conf").iterdir()
        if p.name != "requirements-dev.lock"
    }
    return found


def build_wheel(out: Path) -> Path:
    """The wheel built from the sdist (no build/ left in the checkout, and no stale file in the wheel)."""
    subprocess.run([str(UV), "build", "--quiet", "-o", str(out), str(ROOT)], check=True, timeout=300)
    [wheel] = out.glob("lakehouse-*.whl")
    return wheel


def fresh_venv(path: Path, python: str, wheel: Path) -> Path:
    """A new venv with the runtime lock installed (hashes checked), then the wheel without dependencies:
    the same two steps as the Dockerfile."""
    subprocess.run([str(UV), "venv", "--quiet", "--python", python, str(path)], check=True, timeout=120)
    bin_dir = path / "bin"
    for args in (["-r", str(LOCK)], ["--no-deps", str(wheel)]):
        subprocess.run(
            [str(UV), "pip", "install", "--quiet", "--python", str(bin_dir / "python"), *args],
            check=True,
            timeout=900,
        )
    return bin_dir


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not UV.exists():
        pytest.skip(f"uv is not in {UV.parent}: run `make setup`")
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(tmp / "dist")
    base = getattr(sys, "_base_executable", sys.executable)
    return wheel, fresh_venv(tmp / "venv", base, wheel)


def test_the_wheel_holds_every_declaration_spec_and_template(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = packaged_files()
    assert len([n for n in expected if n.startswith("lakehouse/schemas/")]) >= 25
    assert expected <= names, sorted(expected - names)
    assert "lakehouse/conf/requirements-dev.lock" not in names
    assert not any(n.startswith(("tests/", "jobs/", "native/")) for n in names)


def test_the_installed_wheel_runs_the_demo_stage_outside_the_checkout(installed, tmp_path):
    _, bin_dir = installed
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = lakehouse_env(work / "home")
    env.pop("LAKEHOUSE_SCHEMAS", None)  # the packaged declarations, not an override
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"

    def lakehouse(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bin_dir / "lakehouse"), *args],
            check=False,
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )

    proc = lakehouse("config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    shown = {row["setting"]: row["value"] for row in json.loads(proc.stdout)}
    schemas = Path(shown["schemas_dir"])
    assert schemas.is_relative_to(bin_dir.parent) and not schemas.is_relative_to(ROOT)

    proc = lakehouse("run", "--stage", "demo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = lakehouse("tables", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {t["table"]: t["rows"] for t in json.loads(proc.stdout)}
    assert rows["bronze.demo_measurements"] > 0

    # The run records the package's version, its lock's hash, and no drift: the venv came from the lock.
    code = (
        "import json, lakehouse; t = lakehouse.read_table('meta.ingest_runs').to_pylist();"
        "print(json.dumps([[r['lakehouse_version'], r['lock_sha256'], r['lock_drift'], r['status']] for r in t]))"
    )
    proc = subprocess.run(
        [str(bin_dir / "python"), "-c", code],
        check=False,
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lock_hash = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert json.loads(proc.stdout) and all(
        row == ["0.1.0", lock_hash, [], "succeeded"] for row in json.loads(proc.stdout)
    )


def python312() -> str | None:
    """A Python 3.12 that runs: on PATH, in pyenv's versions (its shim fails when 3.12 is not selected), or
    one uv manages."""
    candidates = [shutil.which("python3.12")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.12*/bin/python3.12"))
    found = subprocess.run([str(UV), "python", "find", "3.12"], capture_output=True, text=True, check=False)
    candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    for candidate in filter(None, candidates):
        probe = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def test_the_wheel_installs_and_imports_on_python_3_12(installed, tmp_path):
    python = python312()
    if python is None:
        pytest.skip("no Python 3.12 on this machine (PATH or `uv python find 3.12`)")
    wheel, _ = installed
    bin_dir = fresh_venv(tmp_path / "venv312", python, wheel)
    code = "import lakehouse, ml.experiment, lakehouse.reader; from lakehouse.runs import environment; "
    code += "e = environment(); assert not e.lock_drift, e.lock_drift; print(e.lakehouse_version)"
    proc = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "0.1.0", proc.stderr


def locked(name: str) -> str:
    return lock_pins(LOCK.read_text())[name]


def test_the_dockerfile_installs_the_wheel_over_the_lock_at_the_locked_versions():
    """The Dockerfile's steps are the fresh venv's above; its versions are the lock's and the Makefile's, and
    its image is the one the Kubernetes manifests name."""
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert args["SPARK_VERSION"] == locked("pyspark")
    make_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    assert args["UV_VERSION"] == make_uv
    assert args["PYTHON_VERSION"] in ("3.11", "3.12")
    assert "COPY lakehouse/conf/requirements.lock /tmp/requirements.lock" in text
    install = text.index("uv pip install --no-cache -r /tmp/requirements.lock")
    assert install < text.index("uv pip install --no-cache --no-deps /tmp/dist/lakehouse-*.whl")
    assert "uv build --out-dir /dist /src" in text
    images = set()
    for manifest in (ROOT / "infra" / "k8s").rglob("*.yaml"):
        images |= set(re.findall(r"image: (lakehouse:\S+)", manifest.read_text()))
    assert images == {f"lakehouse:{project['version']}"}
    assert f"docker build -t lakehouse:{project['version']} ." in text


def test_the_image_builds_and_runs_where_a_docker_engine_runs():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no Docker engine here (`docker info` fails): the Dockerfile's steps are checked above")
    tag = "lakehouse:test-packaging"
    subprocess.run([docker, "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    proc = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "lakehouse", tag, "config", "--format", "json"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = {row["setting"]: row["value"] for row in json.loads(proc.stdout)}
    assert shown["schemas_dir"].startswith("/opt/lakehouse/venv/")
