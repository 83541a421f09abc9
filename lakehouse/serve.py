"""A SQL endpoint over the catalog: the Spark Thrift server (HiveServer2 protocol, JDBC/ODBC).

Why the Thrift server and not Spark Connect: the people who query the lakehouse "from their tools" use SQL
clients (beeline, DBeaver, BI tools, any JDBC/ODBC driver, PyHive-style DB-API); those speak HiveServer2's
Thrift protocol. Spark Connect serves DataFrame programs written against the pyspark/Scala client, not SQL
tools. The server is a Spark application like any job: the same conf (`lakehouse.spark.spark_conf()`: Delta
extension and catalog, the metastore, jars from the cache), the same master setting.

With the embedded Derby metastore the server must be the only JVM on its warehouse while it runs (Derby
admits one); point `LAKEHOUSE_METASTORE_URI` at a Hive metastore to serve while jobs write.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakehouse.cluster import HOST, spark_env, write_spark_defaults
from lakehouse.jars import spark_home
from lakehouse.settings import Settings

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def jdbc_url(host: str, port: int, database: str = "default") -> str:
    return f"jdbc:hive2://{host}:{port}/{database}"


def thrift_server_command(settings: Settings, port: int, host: str = HOST) -> list[str]:
    """`spark-submit --class HiveThriftServer2` with the lakehouse's conf, bound to host:port."""
    from lakehouse.spark import session_jars

    # The server opens each JDBC session on a Hive handler thread whose class loader does not see jars added
    # with `spark.jars` (DeltaCatalog would not be found): they go on the JVM's own classpath as well.
    classpath = session_jars(settings).replace(",", os.pathsep)
    properties = write_spark_defaults(
        settings.home / "serve" / "spark-defaults.conf",
        settings,
        extra={"spark.driver.extraClassPath": classpath},
    )
    return [
        str(spark_home() / "bin" / "spark-submit"),
        "--class", THRIFT_SERVER_CLASS,
        "--name", "lakehouse sql endpoint",
        "--master", settings.spark_master,
        "--properties-file", str(properties),
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", "hive.server2.transport.mode=binary",
    ]  # fmt: skip


def serve_sql(settings: Settings, port: int, host: str = HOST) -> None:
    """Replace this process with the Thrift server (it runs until stopped; SIGTERM/Ctrl-C stop it)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    command = thrift_server_command(settings, port, host)
    env = spark_env()
    env.setdefault("SPARK_LOCAL_IP", host)
    os.chdir(settings.home)  # anything the server writes relative to its directory stays with the warehouse
    os.execve(command[0], command, env)


def beeline_command(url: str, query: str, user: str = os.environ.get("USER", "lakehouse")) -> list[str]:
    """A real JDBC client shipped with pyspark: `beeline -u URL -e QUERY` printing CSV."""
    return [
        str(Path(spark_home()) / "bin" / "beeline"),
        "-u", url,
        "-n", user,
        "--silent=true",
        "--showHeader=true",
        "--outputformat=csv2",
        "-e", query,
    ]  # fmt: skip
