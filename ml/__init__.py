"""The Learn–Design–Build–Test loop: models trained on pinned lake table versions, tracked in MLflow."""
