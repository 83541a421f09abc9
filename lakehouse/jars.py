"""JVM dependencies (Delta; hadoop-aws for s3a:// storage) resolved from Maven Central once, then used offline.

Delta's jars are not on PyPI. Resolution order for a set of Maven coordinates:

1. the cache: `<cache_dir>/jars/<slug>/manifest.json` lists jar files resolved earlier. When present, no
   network is touched and sessions start with `spark.jars` pointing at those files.
2. Spark's own resolver (`spark-submit --packages`, Apache Ivy) into an isolated ivy directory.
3. the ordinary Maven client (`mvn dependency:copy-dependencies`), for machines where Ivy cannot resolve
   (no route to Central for Ivy, a proxy only Maven is set up for, or a half-filled `~/.m2` that Ivy trips on).

Artifacts that pyspark already ships (hadoop-client, parquet, jackson, log4j, ...) are dropped from the
resolved set: Spark's own jars win on the classpath anyway, and shipping duplicates to executors costs time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lakehouse.errors import EnvironmentProblem

SCALA_BINARY = "2.13"
_FOUND = re.compile(r"found (\S+)#(\S+);(\S+) in ")
_JAR_VERSION = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^/]*)\.jar$")


@dataclass(frozen=True)
class ResolvedJars:
    coordinates: tuple[str, ...]
    jars: tuple[Path, ...]
    resolver: str

    def spark_jars(self) -> str:
        return ",".join(str(path) for path in self.jars)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_minor_version() -> str:
    import pyspark

    return ".".join(pyspark.__version__.split(".")[:2])


def delta_coordinates() -> list[str]:
    """The Delta artifact matching the installed delta-spark Python package and Spark minor version."""
    delta_version = metadata.version("delta-spark")
    return [f"io.delta:delta-spark_{spark_minor_version()}_{SCALA_BINARY}:{delta_version}"]


def hadoop_version() -> str:
    """The Hadoop release pyspark ships (its `hadoop-client-api` jar): hadoop-aws must match it exactly."""
    for jar in (spark_home() / "jars").glob("hadoop-client-api-*.jar"):
        return jar.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    raise EnvironmentProblem(f"no hadoop-client-api jar in {spark_home() / 'jars'}: is pyspark installed?")


def hadoop_aws_coordinates() -> list[str]:
    """S3A filesystem (`s3a://`) for the installed Hadoop; it brings the AWS SDK v2 bundle (~640 MB, once)."""
    return [f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"]


def coordinate_sets(warehouse: str, spark_conf: dict[str, str] | None = None) -> list[list[str]]:
    """The groups of coordinates a session needs: Delta always, hadoop-aws when anything uses `s3a://`.

    Each group is resolved and cached on its own, so the large AWS bundle is fetched only by machines that
    use object storage and survives a Delta upgrade.
    """
    sets = [delta_coordinates()]
    conf = spark_conf or {}
    if warehouse.startswith("s3a://") or any(key.startswith("spark.hadoop.fs.s3a.") for key in conf):
        sets.append(hadoop_aws_coordinates())
    return sets


def ensure_jars(coordinates: list[str], cache_dir: Path, resolver: str = "auto") -> ResolvedJars:
    """Return cached jars for `coordinates`, resolving them first if this machine has not yet."""
    slug = _slug(coordinates)
    target = cache_dir / "jars" / slug
    cached = _read_manifest(target, coordinates)
    if cached:
        return cached
    if resolver == "offline":
        raise EnvironmentProblem(
            f"jars {', '.join(coordinates)} are not cached in {target} and resolution is off "
            "(LAKEHOUSE_JARS_RESOLVER=offline): run `lakehouse jars` once on a machine with access to Maven Central"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f"{slug}.lock"):
        cached = _read_manifest(target, coordinates)  # another process may have finished meanwhile
        if cached:
            return cached
        attempts = {"auto": ["spark", "maven"], "spark": ["spark"], "maven": ["maven"]}[resolver]
        failures = []
        for name in attempts:
            with tempfile.TemporaryDirectory(prefix=f"resolve-{name}-", dir=target.parent) as work:
                try:
                    found = _RESOLVERS[name](coordinates, Path(work))
                except EnvironmentProblem as exc:
                    failures.append(f"{name}: {exc}")
                    continue
                return _install(found, coordinates, target, name)
    raise EnvironmentProblem(
        f"cannot resolve {', '.join(coordinates)} from Maven Central ({'; '.join(failures)}); "
        "check network access to Maven Central (or a Maven mirror in ~/.m2/settings.xml) and run `lakehouse jars`"
    )


def _resolve_with_spark(coordinates: list[str], work: Path) -> list[tuple[str, str, Path]]:
    script = work / "noop.py"
    script.write_text("")
    ivy_dir = work / "ivy"
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--packages",
        ",".join(coordinates),
        "--conf",
        f"spark.jars.ivy={ivy_dir}",
        "--conf",
        "spark.ui.enabled=false",
        str(script),
    ]
    env = {**_subprocess_env(), "SPARK_HOME": str(spark_home())}
    proc = _run(command, env=env, timeout=900)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            _last_error_line(proc.stdout + proc.stderr) or f"spark-submit exited {proc.returncode}"
        )
    found = []
    for group, artifact, version in _FOUND.findall(proc.stdout + proc.stderr):
        jar = ivy_dir / "jars" / f"{group}_{artifact}-{version}.jar"
        if jar.exists():
            found.append((artifact, jar.name.removeprefix(f"{group}_"), jar))
    if not found:
        raise EnvironmentProblem("Spark's resolver reported no jars")
    return found


def _resolve_with_maven(coordinates: list[str], work: Path) -> list[tuple[str, str, Path]]:
    mvn = shutil.which("mvn")
    if not mvn:
        raise EnvironmentProblem("the Maven client `mvn` is not installed")
    dependencies = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            *coordinate.split(":")
        )
        for coordinate in coordinates
    )
    (work / "pom.xml").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>lakehouse</groupId><artifactId>jvm-deps</artifactId><version>1</version>"
        f"<dependencies>{dependencies}</dependencies></project>"
    )
    out = work / "out"
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(work / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
        "-Dmdep.useRepositoryLayout=true",
    ]
    proc = _run(command, env=_subprocess_env(), timeout=900)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            _last_error_line(proc.stdout + proc.stderr) or f"mvn exited {proc.returncode}"
        )
    # repository layout: group/path/artifact/version/artifact-version.jar
    found = [(jar.parent.parent.name, jar.name, jar) for jar in out.rglob("*.jar")]
    if not found:
        raise EnvironmentProblem("mvn copied no jars")
    return found


_RESOLVERS = {"spark": _resolve_with_spark, "maven": _resolve_with_maven}


def spark_shipped_artifacts() -> set[str]:
    names = set()
    for jar in (spark_home() / "jars").glob("*.jar"):
        match = _JAR_VERSION.match(jar.name)
        names.add(match.group("artifact") if match else jar.stem)
    return names


def _install(
    found: list[tuple[str, str, Path]], coordinates: list[str], target: Path, resolver: str
) -> ResolvedJars:
    shipped = spark_shipped_artifacts()
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    kept = []
    for artifact, file_name, jar in sorted(found):
        if artifact not in shipped:
            shutil.copy2(jar, staging / file_name)
            kept.append(staging / file_name)
    manifest = {
        "coordinates": coordinates,
        "resolver": resolver,
        "resolved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jars": [path.name for path in kept],
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # the manifest appears atomically with its jars
    return _read_manifest(target, coordinates)


def _read_manifest(target: Path, coordinates: list[str]) -> ResolvedJars | None:
    manifest_path = target / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    jars = tuple(target / name for name in manifest["jars"])
    if manifest["coordinates"] != list(coordinates) or not all(jar.exists() for jar in jars):
        return None
    return ResolvedJars(tuple(coordinates), jars, manifest["resolver"])


def _slug(coordinates: list[str]) -> str:
    return "+".join(coordinate.split(":", 1)[1].replace(":", "-") for coordinate in coordinates)


class _locked:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _subprocess_env() -> dict[str, str]:
    return dict(os.environ)


def _run(command: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"{command[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"{Path(command[0]).name} did not finish in {timeout} s") from exc


def _last_error_line(output: str) -> str:
    for line in reversed(output.splitlines()):
        line = line.strip()
        if "Exception" in line or line.startswith(("[ERROR]", "Error", "ERROR")):
            return line[:300]
    return ""
