"""A catalog several processes can share: the warehouse's Derby metastore behind a Derby network server.

The embedded default admits one JVM at a time: a second `lakehouse` process on the same warehouse cannot
boot it. For concurrent jobs on one machine (two ingests at once, a SQL server beside writers), run
`lakehouse catalog serve` and point every process at it with `metastore_uri = "jdbc:derby://HOST:PORT/"`:
the server opens the same `metastore_db` the embedded default uses, so tables stay where they were. For a
cluster or a production deployment, a Hive metastore service (`thrift://…`) is the usual choice.

The Derby release is the one pyspark ships (its embedded engine); the network server and client jars of
that exact release come from Maven Central through the jar cache, like Delta's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lakehouse.errors import ConfigError, EnvironmentProblem
from lakehouse.jars import ensure_jars, spark_home
from lakehouse.settings import Settings

DEFAULT_PORT = 1527
DERBY_SCHEME = "jdbc:derby://"


def derby_version() -> str:
    for jar in (spark_home() / "jars").glob("derby-*.jar"):
        return jar.name.removeprefix("derby-").removesuffix(".jar")
    raise EnvironmentProblem(f"no derby jar in {spark_home() / 'jars'}: is pyspark installed?")


def derby_coordinates() -> list[str]:
    version = derby_version()
    return [f"org.apache.derby:derbynet:{version}", f"org.apache.derby:derbyclient:{version}"]


def uses_derby_server(settings: Settings) -> bool:
    return bool(settings.metastore_uri and settings.metastore_uri.startswith(DERBY_SCHEME))


def spark_conf(settings: Settings) -> dict[str, str]:
    """Spark settings for the configured metastore: embedded Derby, a Derby server, or a Hive service."""
    uri = settings.metastore_uri
    if not uri:
        return {
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={settings.metastore_db};create=true"
            )
        }
    if uri.startswith("thrift://"):
        return {"spark.hadoop.hive.metastore.uris": uri}
    if uri.startswith(DERBY_SCHEME):
        client = ensure_jars(derby_coordinates(), settings.cache_dir, settings.jars_resolver)
        return {
            # The server resolves the database name against its own derby.system.home: give it in full.
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"{uri.rstrip('/')}/{settings.metastore_db};create=true",
            "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.ClientDriver",
            # The Hive client runs in its own class loader: the Derby client must be shared with it.
            "spark.sql.hive.metastore.sharedPrefixes": "org.apache.derby",
            "spark.driver.extraClassPath": os.pathsep.join(str(j) for j in client.jars),
        }
    raise ConfigError(f"metastore_uri must start with thrift:// or {DERBY_SCHEME}, not {uri!r}")


def server_command(settings: Settings, host: str, port: int) -> list[str]:
    net = ensure_jars(derby_coordinates(), settings.cache_dir, settings.jars_resolver)
    shipped = sorted((spark_home() / "jars").glob("derby*.jar"))
    classpath = os.pathsep.join(str(p) for p in [*shipped, *net.jars])
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    return [
        java,
        f"-Dderby.system.home={settings.home}",
        "-cp",
        classpath,
        "org.apache.derby.drda.NetworkServerControl",
        "start",
        "-h",
        host,
        "-p",
        str(port),
        # Java 17 deprecates the SecurityManager Derby would install; the server listens on `host` only.
        "-noSecurityManager",
    ]


def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> int:
    """Run the Derby network server in the foreground until it is stopped; returns its exit status."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return subprocess.call(server_command(settings, host, port))
