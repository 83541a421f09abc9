"""Delta jars: cached after one resolution, resolvable by Spark's resolver and by Maven alike."""

import os
import shutil

import pytest

from lakehouse.errors import EnvironmentProblem
from lakehouse.jars import delta_coordinates, ensure_jars, spark_shipped_artifacts


def test_coordinates_follow_the_installed_packages():
    from importlib import metadata

    import pyspark

    [coordinate] = delta_coordinates()
    minor = ".".join(pyspark.__version__.split(".")[:2])
    assert coordinate == f"io.delta:delta-spark_{minor}_2.13:{metadata.version('delta-spark')}"


def test_offline_without_cache_is_one_clear_error(tmp_path):
    with pytest.raises(EnvironmentProblem, match="not cached in .* run `lakehouse jars` once") as caught:
        ensure_jars(delta_coordinates(), tmp_path, "offline")
    assert "\n" not in str(caught.value)


def test_cached_jars_are_used_without_resolving(tmp_path):
    from conftest import JAR_CACHE

    resolved = ensure_jars(delta_coordinates(), JAR_CACHE, "offline")  # make test resolved them already
    names = {jar.name for jar in resolved.jars}
    assert any(name.startswith("delta-spark_") for name in names)
    assert any(name.startswith("delta-storage-") for name in names)


@pytest.mark.slow
@pytest.mark.parametrize("resolver", ["spark", "maven"])
def test_each_resolver_fetches_the_same_delta_jars_minus_what_spark_ships(tmp_path, resolver, monkeypatch):
    if resolver == "maven" and not shutil.which("mvn"):
        pytest.skip("mvn not installed")
    if resolver == "spark":
        # Ivy also reads ~/.m2; a clean home makes this a test of Spark's resolver against Maven Central.
        monkeypatch.setenv("SPARK_SUBMIT_OPTS", f"-Duser.home={tmp_path / 'home'}")
    resolved = ensure_jars(delta_coordinates(), tmp_path / "cache", resolver)
    assert resolved.resolver == resolver
    names = sorted(jar.name for jar in resolved.jars)
    delta_version = delta_coordinates()[0].rsplit(":", 1)[1]
    assert f"delta-storage-{delta_version}.jar" in names
    assert any(name.startswith("delta-spark_") and name.endswith(f"-{delta_version}.jar") for name in names)
    shipped = spark_shipped_artifacts()
    assert not [n for n in names if n.rsplit("-", 1)[0] in shipped], "duplicates of Spark's own jars kept"
    # a second call is served from the cache
    again = ensure_jars(delta_coordinates(), tmp_path / "cache", "offline")
    assert again.jars == resolved.jars
    assert os.path.exists(tmp_path / "cache" / "jars" / resolved.jars[0].parent.name / "manifest.json")
