"""The one place a SparkSession is made: Delta configured, catalog persistent, jars from the local cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

from lakehouse import metastore
from lakehouse.errors import EnvironmentProblem
from lakehouse.jars import coordinate_sets, ensure_jars
from lakehouse.settings import Settings

MIN_JAVA = 17
LOG4J2 = Path(__file__).resolve().parent / "conf" / "log4j2.properties"


def java_major_version() -> int:
    """The major version of the `java` Spark will launch (JAVA_HOME first, as Spark's launcher does)."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    hint = (
        f"install a Java {MIN_JAVA} runtime (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
    )
    if not java or not Path(java).exists():
        raise EnvironmentProblem(f"Java is not installed (no `java` on PATH or in JAVA_HOME): {hint}")
    try:
        proc = subprocess.run([java, "-version"], check=False, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot run {java} ({exc}): {hint}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not match:
        raise EnvironmentProblem(f"cannot tell the version of {java}: {hint}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise EnvironmentProblem(f"{java} is Java {major}; Spark 4 needs Java {MIN_JAVA} or newer: {hint}")
    return major


def spark_conf(settings: Settings, jars: str) -> dict[str, str]:
    """Every Spark setting the lakehouse relies on; user overrides (`settings.spark_conf`) win."""
    conf = {
        "spark.jars": jars,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.warehouse_dir,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "4g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Delta's own guards: writers must never widen schemas by accident.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # derby.log and Derby's working files stay with the warehouse, not in the current directory.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.home} -Dlog4j2.configurationFile={LOG4J2}",
        "spark.sql.debug.maxToStringFields": "500",
    }
    if settings.spark_master.startswith("local"):
        # Delta rebuilds table state with 50 tasks by default: right for a cluster, pure overhead on one
        # machine with small logs (halves the cost of a tracked ingest run here).
        conf["spark.databricks.delta.snapshotPartitions"] = "2"
    conf.update(metastore.spark_conf(settings))
    conf.update(settings.spark_conf)
    return conf


def session_jars(settings: Settings) -> str:
    """`spark.jars` for these settings: every needed coordinate set, from the cache (resolved once)."""
    sets = coordinate_sets(settings.warehouse_dir, settings.spark_conf)
    return ",".join(ensure_jars(c, settings.cache_dir, settings.jars_resolver).spark_jars() for c in sets)


def get_spark(settings: Settings | None = None, app_name: str = "lakehouse"):
    """Return the process's SparkSession, creating it with Delta and the persistent catalog."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    settings = settings or Settings.load()
    if settings.spark_remote:  # attach to a running Spark Connect server: no JVM in this process
        return SparkSession.builder.remote(settings.spark_remote).appName(app_name).getOrCreate()
    java_major_version()
    jars = session_jars(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SPARK_HOME", str(Path(__import__("pyspark").__file__).parent))
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit (which starts the JVM and passes its gateway port) the launcher's --master wins.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(settings.spark_master)
    for key, value in spark_conf(settings, jars).items():
        builder = builder.config(key, value)
    # Local masters bind to loopback: nothing the lakehouse starts listens on other interfaces by default.
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers (mapInArrow, UDFs) must run this interpreter, with the lakehouse's packages, not
        # whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.enableHiveSupport().getOrCreate()
    if settings.spark_log_level:
        spark.sparkContext.setLogLevel(settings.spark_log_level)
    return spark


def is_remote(spark) -> bool:
    """Whether `spark` is a Spark Connect client session (no SparkContext or JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


# A SparkContext's conf is fixed once it runs; reading it through py4j costs one round trip per entry (about
# 90 ms for 70 entries), and a landing asks for it once per table it opens (2.7 s of a small gnomAD landing).
_CONTEXT_CONF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_conf(spark) -> dict[str, str]:
    """The session's Spark conf: its SparkContext's (read once per context), or over Spark Connect the server
    session's."""
    if is_remote(spark):
        return dict(spark.conf.getAll)
    context = spark.sparkContext
    if context not in _CONTEXT_CONF:
        _CONTEXT_CONF[context] = dict(context.getConf().getAll())
    return dict(_CONTEXT_CONF[context])


def default_parallelism(spark) -> int:
    """The cluster's task slots (how many pieces a landing splits its input into). A Spark Connect client has
    no SparkContext to ask: it reads the server's `spark.default.parallelism`, else its `local[N]` master."""
    if not is_remote(spark):
        return spark.sparkContext.defaultParallelism
    conf = session_conf(spark)
    if conf.get("spark.default.parallelism"):
        return int(conf["spark.default.parallelism"])
    local = re.fullmatch(r"local\[(\d+|\*)(?:,\d+)?\]", conf.get("spark.master", ""))
    if local and local[1] != "*":
        return int(local[1])
    return os.cpu_count() or 2
