from pathlib import Path

import pytest

from lakehouse.errors import ConfigError
from lakehouse.settings import Settings


def test_defaults_put_everything_under_home(tmp_path):
    settings = Settings.load(
        environ={"LAKEHOUSE_HOME": str(tmp_path / "h")}, config_file=tmp_path / "none.toml"
    )
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.cache_dir == settings.home / "cache"
    assert settings.warehouse_dir == str(settings.home / "warehouse")
    assert settings.metastore_db == settings.home / "metastore_db"
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings.home / 'mlflow' / 'mlflow.db'}"
    assert settings.spark_master == "local[*]"
    assert settings.origins["spark_master"] == "default"


def test_environment_wins_over_file_which_wins_over_default(tmp_path):
    config = tmp_path / "lakehouse.toml"
    config.write_text(
        '[lakehouse]\nspark_master = "spark://10.0.0.1:7077"\nhome = "/data/lake"\n'
        '[spark.conf]\n"spark.sql.shuffle.partitions" = 64\n'
    )
    settings = Settings.load(
        environ={"LAKEHOUSE_SPARK_MASTER": "yarn", "LAKEHOUSE_SPARK_CONF": "spark.executor.memory=8g; a.b=c"},
        config_file=config,
    )
    assert settings.spark_master == "yarn"
    assert settings.origins["spark_master"] == "env LAKEHOUSE_SPARK_MASTER"
    assert settings.home == Path("/data/lake")
    assert settings.origins["home"] == f"file {config}"
    assert settings.spark_conf == {
        "spark.sql.shuffle.partitions": "64",
        "spark.executor.memory": "8g",
        "a.b": "c",
    }


def test_object_store_warehouse_is_kept_as_uri(tmp_path):
    settings = Settings.load(environ={"LAKEHOUSE_WAREHOUSE": "s3a://bucket/lake"}, config_file=tmp_path / "x")
    assert settings.warehouse_dir == "s3a://bucket/lake"


def test_bad_values_are_refused_with_their_name(tmp_path):
    with pytest.raises(ConfigError, match="LAKEHOUSE_SPARK_CONF.*'nonsense'"):
        Settings.load(environ={"LAKEHOUSE_SPARK_CONF": "nonsense"}, config_file=tmp_path / "x")
    with pytest.raises(ConfigError, match="jars_resolver"):
        Settings.load(environ={"LAKEHOUSE_JARS_RESOLVER": "ftp"}, config_file=tmp_path / "x")
    broken = tmp_path / "broken.toml"
    broken.write_text("home = ")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        Settings.load(environ={}, config_file=broken)


def test_a_misspelt_setting_or_a_number_that_is_not_one_is_named(tmp_path):
    config = tmp_path / "lakehouse.toml"
    config.write_text('[lakehouse]\nspark_mastr = "spark://10.0.0.1:7077"\n')
    with pytest.raises(
        ConfigError, match=r"lakehouse.toml: unknown setting 'spark_mastr' \(did you mean 'spark_master'\?\)"
    ):
        Settings.load(environ={}, config_file=config)
    config.write_text('colour = "blue"\n[spark.conf]\n"spark.executor.memory" = "8g"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'; known settings: home, cache_dir"):
        Settings.load(environ={}, config_file=config)
    with pytest.raises(
        ConfigError, match=r"gx_max_rows \(env LAKEHOUSE_GX_MAX_ROWS\) must be a whole number .* not 'abc'"
    ):
        Settings.load(environ={"LAKEHOUSE_GX_MAX_ROWS": "abc"}, config_file=tmp_path / "x")


def test_every_source_endpoint_and_service_is_a_setting_lakehouse_config_shows(tmp_path):
    config = tmp_path / "lakehouse.toml"
    config.write_text(
        '[lakehouse]\ngeo_base_url = "http://mirror.example/"\ndask_scheduler = "tcp://10.0.0.9:8786"\n'
    )
    settings = Settings.load(
        environ={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_GDC_API_URL": "http://127.0.0.1:9/gdc/"},
        config_file=config,
    )
    shown = {name: (value, origin) for name, value, origin in settings.describe()}
    assert shown["geo_base_url"] == ("http://mirror.example", f"file {config}")
    assert shown["dask_scheduler"] == ("tcp://10.0.0.9:8786", f"file {config}")
    assert shown["gdc_api_url"] == ("http://127.0.0.1:9/gdc", "env LAKEHOUSE_GDC_API_URL")
    assert shown["geo_cache_dir"] == (str(settings.cache_dir / "geo"), "default")
    assert shown["spark_log_level"] == ("(Spark's default)", "default")


def test_spark_conf_may_sit_in_the_lakehouse_table_too(tmp_path):
    config = tmp_path / "lakehouse.toml"
    config.write_text('[lakehouse]\nspark_conf = {"spark.executor.memory" = "8g"}\n')
    assert Settings.load(environ={}, config_file=config).spark_conf == {"spark.executor.memory": "8g"}
