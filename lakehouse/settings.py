"""Effective settings: environment over `lakehouse.toml` over built-in defaults.

Everything the lakehouse writes lives under one root, `LAKEHOUSE_HOME`: the Delta warehouse, the embedded
metastore, caches (Delta jars), reports and the local MLflow store. A setting's origin is kept so that
`lakehouse config` can say where each value came from.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from lakehouse.errors import ConfigError

# The table declarations ship inside the package (lakehouse/schemas/<layer>/<table>.yaml, package data).
# pip and uv install a wheel as plain directories, never zipped, so this resource is a directory on disk.
PACKAGED_SCHEMAS = Path(str(resources.files("lakehouse") / "schemas"))

DEFAULT_HOME = "./lakehouse-data"
DEFAULT_MASTER = "local[*]"


DEFAULT_GEO_BASE_URL = "https://ftp.ncbi.nlm.nih.gov"
DEFAULT_GEO_QUERY_URL = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi"
DEFAULT_GDC_API_URL = "https://api.gdc.cancer.gov"


@dataclass(frozen=True)
class Settings:
    home: Path
    cache_dir: Path
    warehouse_dir: str
    spark_master: str
    spark_conf: dict[str, str]
    metastore_uri: str | None
    mlflow_tracking_uri: str
    jars_resolver: str
    schemas_dir: Path
    validation_engine: str = "auto"
    gx_max_rows: int = 200_000
    # `lakehouse maintain`: how long VACUUM keeps removed files of tables no finding or model references.
    vacuum_retention_hours: float = 168.0
    spark_log_level: str | None = None  # Spark's own log level (WARN, INFO, …); default: Spark's
    # A Spark Connect server (`sc://host:port`, `lakehouse serve connect`) to attach to instead of a JVM here.
    spark_remote: str | None = None
    dask_scheduler: str | None = None  # a Dask scheduler address; default: a local cluster per export
    geo_base_url: str = DEFAULT_GEO_BASE_URL  # where GEO's SOFT files are downloaded from (a mirror)
    geo_query_url: str = DEFAULT_GEO_QUERY_URL  # GEO's per-sample query service (GSM accessions)
    geo_cache_dir: Path | None = None  # downloaded GEO files; default <cache_dir>/geo
    gdc_api_url: str = DEFAULT_GDC_API_URL
    origins: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def metastore_db(self) -> Path:
        return self.home / "metastore_db"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @classmethod
    def load(cls, environ: dict[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        toml_path = Path(config_file or env.get("LAKEHOUSE_CONFIG") or "lakehouse.toml")
        file_values = _read_toml(toml_path) if toml_path.exists() else {}
        origins: dict[str, str] = {}

        def pick(key: str, env_name: str, default: str | None) -> str | None:
            if env.get(env_name):
                origins[key] = f"env {env_name}"
                return env[env_name]
            if key in file_values:
                origins[key] = f"file {toml_path}"
                return str(file_values[key])
            origins[key] = "default"
            return default

        home = Path(pick("home", "LAKEHOUSE_HOME", DEFAULT_HOME)).expanduser().resolve()
        cache_dir = Path(pick("cache_dir", "LAKEHOUSE_CACHE", str(home / "cache"))).expanduser().resolve()
        warehouse = pick("warehouse_dir", "LAKEHOUSE_WAREHOUSE", str(home / "warehouse"))
        master = pick("spark_master", "LAKEHOUSE_SPARK_MASTER", DEFAULT_MASTER)
        metastore_uri = pick("metastore_uri", "LAKEHOUSE_METASTORE_URI", None)
        mlflow_uri = pick(
            "mlflow_tracking_uri", "MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
        )
        resolver = pick("jars_resolver", "LAKEHOUSE_JARS_RESOLVER", "auto")
        if resolver not in ("auto", "spark", "maven", "offline"):
            raise ConfigError(f"jars_resolver must be auto, spark, maven or offline, not {resolver!r}")
        schemas_dir = Path(pick("schemas_dir", "LAKEHOUSE_SCHEMAS", str(PACKAGED_SCHEMAS)))

        engine = pick("validation_engine", "LAKEHOUSE_VALIDATION_ENGINE", "auto")
        if engine not in ("auto", "gx", "batched"):
            raise ConfigError(f"validation_engine must be auto, gx or batched, not {engine!r}")

        def number(key: str, env_name: str, default: str, kind: type, what: str):
            text = pick(key, env_name, default)
            try:
                value = kind(text)
            except ValueError:
                value = -1
            if value < 0:
                raise ConfigError(f"{key} ({origins[key]}) must be {what} >= 0, not {text!r}")
            return value

        gx_max_rows = number("gx_max_rows", "LAKEHOUSE_GX_MAX_ROWS", "200000", int, "a whole number of rows")
        vacuum_retention_hours = number(
            "vacuum_retention_hours", "LAKEHOUSE_VACUUM_RETENTION_HOURS", "168", float, "a number of hours"
        )

        spark_log_level = pick("spark_log_level", "LAKEHOUSE_SPARK_LOG_LEVEL", None)
        spark_remote = pick("spark_remote", "LAKEHOUSE_SPARK_REMOTE", None) or None
        if spark_remote and not spark_remote.startswith("sc://"):
            raise ConfigError(
                f"spark_remote ({origins['spark_remote']}) must be a Spark Connect URL sc://host:port, "
                f"not {spark_remote!r}"
            )
        dask_scheduler = pick("dask_scheduler", "LAKEHOUSE_DASK_SCHEDULER", None)
        geo_base_url = pick("geo_base_url", "LAKEHOUSE_GEO_BASE_URL", DEFAULT_GEO_BASE_URL).rstrip("/")
        geo_query_url = pick("geo_query_url", "LAKEHOUSE_GEO_QUERY_URL", DEFAULT_GEO_QUERY_URL)
        geo_cache_dir = Path(
            pick("geo_cache_dir", "LAKEHOUSE_GEO_CACHE", str(cache_dir / "geo"))
        ).expanduser()
        gdc_api_url = pick("gdc_api_url", "LAKEHOUSE_GDC_API_URL", DEFAULT_GDC_API_URL).rstrip("/")

        spark_conf = {str(k): str(v) for k, v in file_values.get("spark_conf", {}).items()}
        if spark_conf:
            origins["spark_conf"] = f"file {toml_path}"
        if env.get("LAKEHOUSE_SPARK_CONF"):
            spark_conf.update(_parse_conf_pairs(env["LAKEHOUSE_SPARK_CONF"]))
            origins["spark_conf"] = "env LAKEHOUSE_SPARK_CONF"
        origins.setdefault("spark_conf", "default")

        return cls(
            home=home,
            cache_dir=cache_dir,
            warehouse_dir=_absolute_uri(warehouse),
            spark_master=master,
            spark_conf=spark_conf,
            metastore_uri=metastore_uri,
            mlflow_tracking_uri=mlflow_uri,
            jars_resolver=resolver,
            schemas_dir=schemas_dir,
            validation_engine=engine,
            gx_max_rows=gx_max_rows,
            vacuum_retention_hours=vacuum_retention_hours,
            spark_log_level=spark_log_level,
            spark_remote=spark_remote,
            dask_scheduler=dask_scheduler,
            geo_base_url=geo_base_url,
            geo_query_url=geo_query_url,
            geo_cache_dir=geo_cache_dir.resolve(),
            gdc_api_url=gdc_api_url,
            origins=origins,
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, origin) rows for `lakehouse config`."""
        rows = [
            ("home", str(self.home)),
            ("cache_dir", str(self.cache_dir)),
            ("warehouse_dir", self.warehouse_dir),
            ("spark_master", self.spark_master),
            ("spark_remote", redact_uri(self.spark_remote) or "(none: each command starts its own Spark)"),
            ("metastore", redact_uri(self.metastore_uri) or f"embedded Derby at {self.metastore_db}"),
            ("mlflow_tracking_uri", redact_uri(self.mlflow_tracking_uri)),
            ("jars_resolver", self.jars_resolver),
            ("schemas_dir", str(self.schemas_dir)),
            (
                "validation_engine",
                f"{self.validation_engine} (for what file counts cannot decide; GX up to {self.gx_max_rows} rows when auto)",
            ),
            ("vacuum_retention_hours", f"{self.vacuum_retention_hours:g}"),
            ("spark_log_level", self.spark_log_level or "(Spark's default)"),
            ("dask_scheduler", self.dask_scheduler or "(a local cluster per export)"),
            ("geo_base_url", self.geo_base_url),
            ("geo_query_url", self.geo_query_url),
            ("geo_cache_dir", str(self.geo_cache_dir or self.cache_dir / "geo")),
            ("gdc_api_url", self.gdc_api_url),
            (
                "spark_conf",
                ", ".join(f"{k}={redact(k, v)}" for k, v in sorted(self.spark_conf.items())) or "(none)",
            ),
        ]
        key_of = {"metastore": "metastore_uri"}
        return [(name, value, self.origins.get(key_of.get(name, name), "default")) for name, value in rows]


# Keys whose values are credentials (Spark's own `spark.redaction.regex`, widened): never printed or logged.
SECRET_KEY = re.compile(
    r"(?i)secret|password|passwd|token|access[._-]?key|credential|private[._-]?key|api[._-]?key"
)
REDACTED = "*********(redacted)"


def redact(key: str, value: str) -> str:
    return REDACTED if SECRET_KEY.search(key) else value


def redact_uri(uri: str | None) -> str | None:
    """A URI without the password of its user-info part (`https://user:pw@host` → `https://user:***@host`)."""
    return re.sub(r"(?<=://)([^/:@]+):[^/@]+@", r"\1:" + REDACTED + "@", uri) if uri else uri


def _read_toml(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    section = dict(data.get("lakehouse", {k: v for k, v in data.items() if k != "spark"}))
    unknown = sorted(set(section) - set(SETTING_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], SETTING_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known settings: {', '.join(SETTING_KEYS)}"
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}{hint}")
    conf = data.get("spark", {}).get("conf", {})
    if conf:
        section = {**section, "spark_conf": conf}
    return section


# Every key a lakehouse.toml may set (its [lakehouse] table, or the file's top level): the settings' fields.
SETTING_KEYS = tuple(f.name for f in fields(Settings) if f.name != "origins")


def _parse_conf_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"LAKEHOUSE_SPARK_CONF: expected key=value pairs separated by ';', got {item!r}"
            )
        pairs[key.strip()] = value.strip()
    return pairs


def _absolute_uri(location: str) -> str:
    if "://" in location or location.startswith(("s3a:", "hdfs:", "file:")):
        return location
    return str(Path(location).expanduser().resolve())
