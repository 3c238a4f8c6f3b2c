"""A Spark standalone cluster on this machine, and spark-submit against it.

The pip installation of pyspark carries Spark's jars and `spark-class` but not
the `sbin/start-*.sh` scripts, so the master and workers are started here as
plain processes, on the loopback interface only. Used by the cluster test and
for trying a deployment on a laptop before a real cluster.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
PACKAGE_DIR = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def build_pyfiles_zip(dest_dir: Path) -> Path:
    """The engine as a zip for `--py-files` (what executors import), with its shipped
    configuration (studies, vocabulary, Spark profiles), as in the wheel."""
    dest = Path(dest_dir) / "cohort_engine.zip"
    files = [*PACKAGE_DIR.rglob("*.py"), *(PACKAGE_DIR / "conf").glob("*/*.yaml"), *(PACKAGE_DIR / "conf").glob("*/*.csv")]
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, Path("cohort_engine") / path.relative_to(PACKAGE_DIR))
    return dest


class StandaloneCluster:
    """A master and `workers` workers, each with `cores` cores, as child processes."""

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "2g", log_dir: Path | None = None,
                 environ: dict | None = None):
        self.workers, self.cores, self.memory = workers, cores, memory
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="spark-standalone-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.environ = dict(os.environ if environ is None else environ)
        self.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        self.environ["SPARK_HOME"] = str(SPARK_HOME)
        self.environ["SPARK_LOCAL_IP"] = LOOPBACK
        self.port, self.ui_port = free_port(), free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")
        process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=log,
                                   stderr=subprocess.STDOUT, env=self.environ, start_new_session=True)
        self.processes.append(process)

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ui_port}/json/", timeout=2) as response:
            return json.loads(response.read().decode("utf-8"))

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a Spark standalone process exited while waiting for {what} "
                                   f"(logs in {self.log_dir})")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Spark standalone: no {what} after {timeout:.0f}s (logs in {self.log_dir})")

    def start(self, timeout: float = 90.0) -> "StandaloneCluster":
        # A `with` block does not stop what a failed (or interrupted) __enter__ started, and
        # the processes run in their own sessions: stopped here, or they outlive the caller.
        try:
            self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                        "--port", str(self.port), "--webui-port", str(self.ui_port))
            self._wait(lambda: self.status().get("status") == "ALIVE", "master", timeout)
            for k in range(self.workers):
                self._spawn(f"worker-{k}", "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK,
                            "--cores", str(self.cores), "--memory", self.memory,
                            "--webui-port", str(free_port()), "--work-dir", str(self.log_dir / f"work-{k}"),
                            self.master_url)
            self._wait(lambda: self.status().get("aliveworkers", 0) >= self.workers, f"{self.workers} workers",
                       timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def spark_submit(master: str, script: Path, args: list[str], py_files: Path, environ: dict,
                 conf: dict | None = None, log_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run a jobs/ script with spark-submit in client mode; output goes to `log_path`."""
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master, "--py-files", str(py_files)]
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    command += [str(script), *args]
    env = dict(environ)
    env["SPARK_HOME"] = str(SPARK_HOME)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    with open(log_path or os.devnull, "wb") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
