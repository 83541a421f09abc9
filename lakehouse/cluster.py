"""Beyond one process: a Spark standalone cluster on this machine, spark-submit of the lakehouse's jobs, and
the Spark conf written out as `spark-defaults.conf`.

The pip package of pyspark ships `bin/spark-class` and `bin/spark-submit` but no `sbin/start-master.sh`, so
the daemons are started here directly (`spark-class org.apache.spark.deploy.master.Master ...`), each in its
own process group, bound to 127.0.0.1 on free ports, with logs and work directories under one state
directory. `infra/standalone/*.sh` wrap this module for people; tests use `StandaloneCluster` directly.

The Spark conf of a submitted job is the one `lakehouse.spark.spark_conf()` derives (Delta extension and
catalog, metastore, jars from the local cache): it is rendered into a properties file that `spark-submit
--properties-file` reads at JVM launch, which is what puts the Delta jars on the driver's classpath before
the job's Python code runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from lakehouse.errors import EnvironmentProblem
from lakehouse.jars import spark_home
from lakehouse.settings import Settings

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
SPARK_DEFAULTS_TEMPLATE = Path(str(resources.files("lakehouse") / "conf" / "spark-defaults.conf.template"))


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None
):
    """Poll `check()` until it returns a truthy value; fail with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EnvironmentProblem(f"{what}: process exited with {process.returncode}{_tail(log)}")
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise EnvironmentProblem(f"{what}: not ready after {timeout:.0f} s{_tail(log)}")


def get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # our own loopback daemons
        return json.loads(response.read())


def spark_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Spark daemons and spark-submit: pyspark's SPARK_HOME, loopback, this interpreter."""
    env = dict(os.environ if base is None else base)
    env["SPARK_HOME"] = str(spark_home())
    env.setdefault("SPARK_LOCAL_IP", HOST)
    # Executors and the driver run this venv's python, which has the lakehouse and its dependencies.
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return env


@dataclass
class Daemon:
    name: str
    pid: int
    port: int
    ui_port: int
    log: str

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        cmdline = Path(f"/proc/{self.pid}/cmdline")
        # a recycled pid is not ours: only a Spark daemon's JVM counts
        return not cmdline.exists() or b"org.apache.spark.deploy" in cmdline.read_bytes()

    def stop(self, grace: float = 15) -> None:
        if not self.alive():
            return
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.2)
        if self.alive():
            _signal_group(self.pid, signal.SIGKILL)


@dataclass
class StandaloneCluster:
    """A master and N workers on 127.0.0.1, started from the installed pyspark, state under `root`."""

    root: Path
    master: Daemon | None = None
    workers: list[Daemon] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master.port}"

    @property
    def master_ui(self) -> str:
        return f"http://{HOST}:{self.master.ui_port}"

    def start(
        self, workers: int = 2, cores: int = 1, memory: str = "2g", timeout: float = 90
    ) -> StandaloneCluster:
        if self.master is not None:
            raise EnvironmentProblem(f"a cluster is already recorded in {self.state_file}: stop it first")
        for sub in ("logs", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        try:
            port, ui_port = free_port(), free_port()
            # The REST submission server (port 6066 by default) is not needed for client-mode submits.
            env = spark_env({**os.environ, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"})
            self.master = self._launch(
                "master", MASTER_CLASS, ["--host", HOST, "--port", str(port), "--webui-port", str(ui_port)],
                port, ui_port, env,
            )  # fmt: skip
            wait_until(lambda: port_open(HOST, port), timeout, "Spark master", log=Path(self.master.log))
            for index in range(1, workers + 1):
                worker_port, worker_ui = free_port(), free_port()
                work_dir = self.root / "work" / f"worker-{index}"
                work_dir.mkdir(parents=True, exist_ok=True)
                args = [
                    self.master_url, "--host", HOST, "--port", str(worker_port), "--webui-port", str(worker_ui),
                    "--cores", str(cores), "--memory", memory, "--work-dir", str(work_dir),
                ]  # fmt: skip
                self.workers.append(
                    self._launch(f"worker-{index}", WORKER_CLASS, args, worker_port, worker_ui, spark_env())
                )
            self.save()
            wait_until(
                lambda: len(self.alive_workers()) == workers, timeout, f"{workers} workers registering"
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, cls: str, args: list[str], port: int, ui_port: int, env) -> Daemon:
        log = self.root / "logs" / f"{name}.log"
        with open(log, "ab") as handle:
            process = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), cls, *args],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole, outlives this process
            )
        return Daemon(name, process.pid, port, ui_port, str(log))

    def status(self) -> dict:
        """The master's own JSON status page (workers, running and completed applications)."""
        return get_json(f"{self.master_ui}/json/")

    def alive_workers(self) -> list[dict]:
        return [w for w in self.status().get("workers", []) if w.get("state") == "ALIVE"]

    def worker_status(self, worker: Daemon) -> dict:
        """A worker's JSON status page: its running and finished executors, by application."""
        return get_json(f"http://{HOST}:{worker.ui_port}/json/")

    def stop(self) -> None:
        for daemon in [*self.workers, *([self.master] if self.master else [])]:
            daemon.stop()
        self.workers, self.master = [], None
        self.state_file.unlink(missing_ok=True)

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        state = {
            "master": dataclasses.asdict(self.master),
            "workers": [dataclasses.asdict(w) for w in self.workers],
        }
        self.state_file.write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, root: Path) -> StandaloneCluster:
        cluster = cls(Path(root))
        if cluster.state_file.exists():
            state = json.loads(cluster.state_file.read_text())
            cluster.master = Daemon(**state["master"])
            cluster.workers = [Daemon(**w) for w in state["workers"]]
        return cluster


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: the group id is the daemon's pid
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not Path(log).exists():
        return ""
    text = Path(log).read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


# --- the Spark conf as a file --------------------------------------------------------------------------


def job_conf(settings: Settings, master: str | None = None) -> dict[str, str]:
    """The conf a job gets from `lakehouse.spark.spark_conf()` (the single source), for `master`."""
    from lakehouse.spark import session_jars, spark_conf

    if master:
        settings = dataclasses.replace(settings, spark_master=master)
    return spark_conf(settings, session_jars(settings))


def render_spark_defaults(
    settings: Settings,
    master: str | None = None,
    extra: dict[str, str] | None = None,
    template: Path | None = None,
) -> str:
    """`spark-defaults.conf` text: the template's cluster settings, then the lakehouse's derived conf."""
    conf = job_conf(settings, master)
    conf.update(extra or {})
    width = max(len(key) for key in conf) + 2
    lines = "\n".join(f"{key.ljust(width)}{_escape(value)}" for key, value in sorted(conf.items()))
    text = Path(template or SPARK_DEFAULTS_TEMPLATE).read_text()
    return string.Template(text).substitute(
        master=master or settings.spark_master, lakehouse_conf=lines, spark_version=_spark_version()
    )


def write_spark_defaults(path: Path, settings: Settings, master: str | None = None, extra=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_spark_defaults(settings, master, extra))
    return path


def _escape(value: str) -> str:
    # Java properties: backslash escapes; a value keeps its inner spaces (everything after the key's padding).
    return value.replace("\\", "\\\\")


def _spark_version() -> str:
    import pyspark

    return pyspark.__version__


# --- spark-submit --------------------------------------------------------------------------------------


@dataclass
class Submitted:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def submit(
    job: str | Path,
    settings: Settings,
    master: str,
    args: list[str] | tuple[str, ...] = (),
    extra_conf: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    work_dir: Path | None = None,
    timeout: float = 600,
) -> Submitted:
    """`spark-submit --master MASTER --properties-file <lakehouse conf> JOB ARGS`, in client mode.

    The job runs unchanged: `spark-submit`'s `--master` decides where it runs. `LAKEHOUSE_SPARK_MASTER` is
    removed from the job's environment, because inside the job `get_spark()` honours an explicit setting
    over the launcher's master.
    """
    work_dir = Path(work_dir or settings.home / "submit")
    properties = write_spark_defaults(work_dir / "spark-defaults.conf", settings, master, extra_conf)
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master", master,
        "--deploy-mode", "client",
        "--properties-file", str(properties),
        str(job),
        *args,
    ]  # fmt: skip
    job_env = spark_env(env)
    job_env.pop("LAKEHOUSE_SPARK_MASTER", None)
    started = time.monotonic()
    proc = subprocess.run(
        command,
        env=job_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=str(settings.home),
    )
    return Submitted(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def event_log_lines(event_dir: Path, app_id: str):
    """The events of one application in `spark.eventLog.dir`: a single file, or Spark 4's rolling
    `eventlog_v2_<app>/events_<n>_<app>` parts (the default), read in order."""
    single = Path(event_dir) / app_id
    rolling = Path(event_dir) / f"eventlog_v2_{app_id}"
    if single.is_file():
        parts = [single]
    else:
        parts = sorted(rolling.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    if not parts:
        raise FileNotFoundError(f"no event log for {app_id} in {event_dir}")
    for part in parts:
        with open(part) as handle:
            yield from handle


def task_placement(event_dir: Path, app_id: str) -> dict[str, dict]:
    """Executors of one application from its Spark event log: host, log URLs (name the worker) and tasks."""
    executors: dict[str, dict] = {}
    for line in event_log_lines(event_dir, app_id):
        event = json.loads(line)
        kind = event.get("Event")
        if kind == "SparkListenerExecutorAdded":
            info = event["Executor Info"]
            executors.setdefault(event["Executor ID"], {"tasks": 0}).update(
                host=info.get("Host"), log_urls=info.get("Log Urls", {})
            )
        elif kind == "SparkListenerTaskEnd":
            executor = event["Task Info"]["Executor ID"]
            executors.setdefault(executor, {"tasks": 0})["tasks"] += 1
    return executors


def main(argv: list[str] | None = None) -> int:
    """`python -m lakehouse.cluster start|stop|status|conf` (used by infra/standalone/*.sh)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lakehouse.cluster", description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop", "status", "conf"])
    parser.add_argument("--root", default=None, help="state directory (default: $LAKEHOUSE_HOME/cluster)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--memory", default="2g")
    parser.add_argument("--master", default=None, help="for `conf`: the master to render (default: settings)")
    args = parser.parse_args(argv)
    settings = Settings.load()
    root = Path(args.root or settings.home / "cluster")
    cluster = StandaloneCluster.load(root)
    try:
        if args.action == "start":
            cluster.start(args.workers, args.cores, args.memory)
            print(
                f"master {cluster.master_url} (UI {cluster.master_ui}), {len(cluster.workers)} workers; state in {root}"
            )
        elif args.action == "stop":
            running = cluster.master is not None
            cluster.stop()
            print("stopped" if running else f"no cluster recorded in {root}")
        elif args.action == "status":
            if cluster.master is None:
                print(f"no cluster recorded in {root}")
                return 1
            status = cluster.status()
            print(json.dumps({"url": status.get("url"), "status": status.get("status"),
                              "workers": [(w["id"], w["state"]) for w in status.get("workers", [])]}, indent=1))  # fmt: skip
        else:
            print(render_spark_defaults(settings, args.master))
    except EnvironmentProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
