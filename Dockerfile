# The image the Kubernetes manifests name (infra/k8s: lakehouse:0.1.0), built from the wheel and the lock:
#
#   docker build -t lakehouse:0.1.0 .
#
# It installs exactly what tests/test_packaging.py installs into a fresh venv before running the demo stage
# there: the runtime lock (hashes checked), then the wheel without dependencies. That test also holds the
# versions below to the lock's and the Makefile's. Where a Docker engine runs, it builds this image and
# runs `lakehouse config` in it.
ARG PYTHON_VERSION=3.11
# Spark's own image, for its Kubernetes entrypoint only; Spark itself comes from the locked pyspark wheel.
ARG SPARK_VERSION=4.1.4
ARG UV_VERSION=0.13.9

FROM apache/spark:${SPARK_VERSION} AS spark

FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
ARG UV_VERSION
RUN pip install --no-cache-dir uv==${UV_VERSION}
COPY . /src
# through the sdist, as the tests build it: the wheel holds only what a clean build of the sources gives
RUN uv build --out-dir /dist /src

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG UV_VERSION
# Java 17 for Spark; procps and tini, which Spark's entrypoint calls.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/lakehouse/venv
ENV PATH=/opt/lakehouse/venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/lakehouse/venv/bin/python \
    SPARK_HOME=/opt/spark \
    LAKEHOUSE_CACHE=/opt/lakehouse/cache \
    LAKEHOUSE_JARS_RESOLVER=offline \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_DISABLE_TELEMETRY=true
COPY lakehouse/conf/requirements.lock /tmp/requirements.lock
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir uv==${UV_VERSION} \
 && uv venv --python "$(command -v python3)" "$VIRTUAL_ENV" \
 && uv pip install --no-cache -r /tmp/requirements.lock \
 && uv pip install --no-cache --no-deps /tmp/dist/lakehouse-*.whl \
 && rm -rf /tmp/requirements.lock /tmp/dist
# SPARK_HOME is the pyspark package (bin/, jars/); the Delta jars (and hadoop-aws for s3a://), resolved now,
# join its jars/ so nothing is fetched or shipped at run time (LAKEHOUSE_SPARK_CONF="spark.jars=" in the
# manifests).
RUN ln -s "$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" /opt/spark \
 && LAKEHOUSE_JARS_RESOLVER=auto LAKEHOUSE_WAREHOUSE=s3a://resolve-only/warehouse lakehouse jars \
 && find /opt/lakehouse/cache/jars -name '*.jar' -exec cp -n {} /opt/spark/jars/ \; \
 && mkdir -p /opt/spark/work-dir && chmod g+w /opt/spark/work-dir
COPY jobs/ /opt/lakehouse/jobs/
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
WORKDIR /opt/spark/work-dir
USER 185
ENTRYPOINT ["/opt/entrypoint.sh"]
