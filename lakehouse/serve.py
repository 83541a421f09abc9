"""Servers over the catalog: the Spark Thrift server for SQL tools, and Spark Connect for lakehouse commands.

`serve sql` is the Spark Thrift server (HiveServer2 protocol, JDBC/ODBC): the people who query the lakehouse
"from their tools" use SQL clients (beeline, DBeaver, BI tools, any JDBC/ODBC driver, PyHive-style DB-API),
and those speak HiveServer2's Thrift protocol.

`serve connect` is Spark Connect (gRPC, shipped with Spark 4.1): one long-lived Spark that `lakehouse`
commands and jobs attach to (`spark_remote = "sc://HOST:PORT"`) instead of each starting a JVM. Their
DataFrame plans, landing tasks (`mapInArrow`) included, run on the server; the delta-rs commits and reads
stay in the client, which reaches the warehouse itself.

Both are Spark applications like any job: the same conf (`lakehouse.spark.spark_conf()`: Delta extension and
catalog, the metastore, jars from the cache), the same master setting.

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
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_PORT = 15002


def jdbc_url(host: str, port: int, database: str = "default") -> str:
    return f"jdbc:hive2://{host}:{port}/{database}"


def server_properties(settings: Settings, name: str, extra: dict[str, str] | None = None) -> Path:
    """A properties file with the lakehouse's conf for a server application."""
    from lakehouse.spark import session_jars

    # Servers open each session on a handler thread whose class loader does not see jars added with
    # `spark.jars` (DeltaCatalog would not be found): they go on the JVM's own classpath as well.
    classpath = session_jars(settings).replace(",", os.pathsep)
    return write_spark_defaults(
        settings.home / "serve" / f"{name}.conf",
        settings,
        extra={"spark.driver.extraClassPath": classpath, **(extra or {})},
    )


def thrift_server_command(settings: Settings, port: int, host: str = HOST) -> list[str]:
    """`spark-submit --class HiveThriftServer2` with the lakehouse's conf, bound to host:port."""
    return [
        str(spark_home() / "bin" / "spark-submit"),
        "--class", THRIFT_SERVER_CLASS,
        "--name", "lakehouse sql endpoint",
        "--master", settings.spark_master,
        "--properties-file", str(server_properties(settings, "sql")),
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", "hive.server2.transport.mode=binary",
    ]  # fmt: skip


def connect_server_command(settings: Settings, port: int, host: str = HOST) -> list[str]:
    """`spark-submit --class SparkConnectServer` with the lakehouse's conf, gRPC bound to host:port."""
    properties = server_properties(
        settings,
        "connect",
        {"spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port)},
    )
    return [
        str(spark_home() / "bin" / "spark-submit"),
        "--class", CONNECT_SERVER_CLASS,
        "--name", "lakehouse spark connect",
        "--master", settings.spark_master,
        "--properties-file", str(properties),
    ]  # fmt: skip


def connect_url(host: str, port: int) -> str:
    return f"sc://{host}:{port}"


def serve_sql(settings: Settings, port: int, host: str = HOST) -> None:
    """Replace this process with the Thrift server (it runs until stopped; SIGTERM/Ctrl-C stop it)."""
    _exec(settings, thrift_server_command(settings, port, host), host)


def serve_connect(settings: Settings, port: int, host: str = HOST) -> None:
    """Replace this process with the Spark Connect server (it runs until stopped; SIGTERM/Ctrl-C stop it)."""
    _exec(settings, connect_server_command(settings, port, host), host)


def _exec(settings: Settings, command: list[str], host: str) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
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
