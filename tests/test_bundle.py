"""The Databricks Asset Bundle: structure, task chain, schedule, files it names."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
JOB_FILE = REPO / "conf" / "jobs" / "cohort_pipeline.job.yml"
STAGES = ["ingest", "lines", "cohort", "endpoints", "analysis"]


def load():
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text(encoding="utf-8"))
    job = yaml.safe_load(JOB_FILE.read_text(encoding="utf-8"))["resources"]["jobs"]["cohort_pipeline"]
    return bundle, job


def test_bundle_includes_the_job_and_builds_the_wheel():
    bundle, _ = load()
    assert bundle["bundle"]["name"] == "cohort-engine"
    assert any(JOB_FILE.match(pattern.replace("*", "*")) for pattern in bundle["include"])
    assert bundle["artifacts"]["cohort_engine"]["type"] == "whl"
    assert {"dev", "prod"} <= set(bundle["targets"])


def test_tasks_run_the_stages_in_order():
    _, job = load()
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == STAGES
    for before, task in zip(tasks, tasks[1:]):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    assert "depends_on" not in tasks[0]
    for task in tasks:
        script = (JOB_FILE.parent / task["spark_python_task"]["python_file"]).resolve()
        assert script.is_file(), script
        assert script.parent == REPO / "jobs"
        assert task["libraries"] == [{"whl": "../../dist/*.whl"}]
        assert task["job_cluster_key"] == job["job_clusters"][0]["job_cluster_key"]


def test_parameters_are_declared_and_passed():
    bundle, job = load()
    declared = {p["name"] for p in job["parameters"]}
    assert declared == {"source", "lake", "out", "study", "cutoff", "load_mode"}
    for p in job["parameters"]:
        for var in re.findall(r"\$\{var\.(\w+)\}", str(p["default"])):
            assert var in bundle["variables"]
    for task in job["tasks"]:
        args = task["spark_python_task"]["parameters"]
        used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", " ".join(args)))
        assert used <= declared
        assert {"--lake", "--out", "--study", "--cutoff"} <= set(args)
    assert "--source" in job["tasks"][0]["spark_python_task"]["parameters"]
    assert "--mode" in job["tasks"][0]["spark_python_task"]["parameters"]  # monthly loads merge


def test_monthly_schedule_one_run_at_a_time():
    _, job = load()
    seconds, minutes, hours, day, month, weekday = job["schedule"]["quartz_cron_expression"].split()
    assert day.isdigit() and month == "*" and weekday == "?"
    assert job["schedule"]["pause_status"] == "UNPAUSED"
    assert job["max_concurrent_runs"] == 1


def test_job_scripts_accept_the_task_parameters():
    # Every job script hands its argv to the CLI, which must parse what the task passes.
    from cohort_engine.cli import build_parser
    _, job = load()
    for task in job["tasks"]:
        text = (JOB_FILE.parent / task["spark_python_task"]["python_file"]).resolve().read_text()
        prefix = re.search(r"submit\(\[(.*)\]\)", text).group(1)
        argv = [a.strip().strip('"') for a in prefix.split(",")]
        values = {"cutoff": "", "load_mode": "incremental"}
        args = [re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: values.get(m.group(1), f"/x/{m.group(1)}"), a)
                for a in task["spark_python_task"]["parameters"]]
        parsed = build_parser().parse_args(argv + args)
        assert parsed.stages == task["task_key"] and parsed.cutoff is None


def test_tasks_read_the_study_and_profile_shipped_in_the_wheel(tmp_path, monkeypatch):
    """The tasks install the wheel; the bundle uploads no conf/ folder (its links to the
    package's configuration are not synced). The study every task gets by default and
    the cluster's Spark profile must therefore be package data of the wheel."""
    import tomllib
    from pathlib import PurePosixPath

    from cohort_engine import cli
    from cohort_engine.conf_folder import shipped_conf_dir
    from cohort_engine.session import profile_path
    bundle, job = load()
    for text in ((REPO / "databricks.yml").read_text(), JOB_FILE.read_text()):
        assert not re.search(r"(\$\{workspace\.|/Workspace/)\S*conf/", text)  # no workspace copy of conf/
    variables = {name: v.get("default") for name, v in bundle["variables"].items()}
    params = {p["name"]: re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), str(p["default"]))
              for p in job["parameters"]}
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cohort_engine"]
    shipped = shipped_conf_dir().resolve()

    def in_wheel(path):
        rel = Path(path).resolve().relative_to(shipped)  # raises unless it is the package's file
        assert any(PurePosixPath("conf", rel.as_posix()).match(p) for p in patterns), rel
        return rel.as_posix()

    monkeypatch.chdir(tmp_path)  # a task's working folder holds no conf/
    monkeypatch.delenv("COHORT_ENGINE_CONF_DIR", raising=False)
    for task in job["tasks"]:
        args = [re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: params[m.group(1)], a)
                for a in task["spark_python_task"]["parameters"]]
        parsed = cli.build_parser().parse_args(["run", "--stages", task["task_key"], *args])
        (study,) = cli._studies(parsed, {})
        assert in_wheel(study.source_path) == "studies/her2_paclitaxel_liposome.yaml"
        assert in_wheel(study.vocabulary_path({})) == "vocabulary/drugs.csv"
        assert task["libraries"] == [{"whl": "../../dist/*.whl"}]
    profile = job["job_clusters"][0]["new_cluster"]["spark_env_vars"]["COHORT_ENGINE_SPARK_PROFILE"]
    assert in_wheel(profile_path(profile, {})) == "spark/databricks.yaml"


def test_the_job_cluster_lets_hotspot_compile_sparks_large_methods():
    from cohort_engine.session import JIT_COMPILE_HUGE_METHODS
    _, job = load()
    cluster = job["job_clusters"][0]["new_cluster"]
    assert cluster["spark_conf"] == {"spark.driver.extraJavaOptions": JIT_COMPILE_HUGE_METHODS,
                                     "spark.executor.extraJavaOptions": JIT_COMPILE_HUGE_METHODS}
