"""Data quality: quarantine of bad records, validation and readiness of table versions."""
