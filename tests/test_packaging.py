"""The configuration ships inside the package: a wheel, a pip install and a `--py-files`
zip find the default study, the drug vocabulary and the Spark profiles without the
repository's conf/ folder."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lib" / "cohort_engine"
SHIPPED = PACKAGE / "conf"
LINKED = ("studies", "vocabulary", "spark")  # conf/<name> -> lib/cohort_engine/conf/<name>
EXPECTED = {"studies/her2_paclitaxel_liposome.yaml", "studies/docetaxel_hp_first_line.yaml",
            "vocabulary/drugs.csv", "spark/local.yaml", "spark/local-large.yaml",
            "spark/standalone.yaml", "spark/databricks.yaml"}
# The interpreter's own site-packages (pyspark, pandas …) without the .pth files that
# put the repository's lib/ on sys.path (the editable install).
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_files() -> dict[str, Path]:
    """{path relative to the package's conf/: file} of the configuration shipped."""
    return {p.relative_to(SHIPPED).as_posix(): p for p in sorted(SHIPPED.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def package_data_patterns() -> list[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-data"]["cohort_engine"]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment less what would point a child at the repository or
    at the test session's Spark (its gateway) or configuration."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYSPARK_GATEWAY", "COHORT_ENGINE_", "PYTHON"))}
    env.update(PYSPARK_PYTHON=sys.executable, **extra)
    return env


def test_shipped_configuration_holds_study_vocabulary_and_profiles():
    assert EXPECTED <= set(shipped_files())


def test_every_shipped_file_is_package_data():
    # A file added under lib/cohort_engine/conf that no pattern matches would be left
    # out of the wheel.
    patterns = package_data_patterns()
    for rel in shipped_files():
        assert any(PurePosixPath("conf", rel).match(p) for p in patterns), rel


def test_repository_conf_links_to_the_packaged_configuration():
    for name in LINKED:
        link = REPO / "conf" / name
        assert link.is_symlink(), f"conf/{name} should link to lib/cohort_engine/conf/{name}"
        assert not os.path.isabs(os.readlink(link))  # relative: works in any clone
        assert link.resolve() == (SHIPPED / name).resolve()
    jobs = REPO / "conf" / "jobs"
    assert jobs.is_dir() and not jobs.is_symlink()
    # The documented path still reads the shipped file.
    assert (REPO / "conf" / "studies" / "her2_paclitaxel_liposome.yaml").read_bytes() == \
        (SHIPPED / "studies" / "her2_paclitaxel_liposome.yaml").read_bytes()


def test_no_configuration_file_exists_twice():
    seen: dict[str, str] = {}
    for root in (REPO / "conf", SHIPPED):
        for folder, dirs, files in os.walk(root):  # does not follow the links
            for name in files:
                path = Path(folder, name)
                if path.is_symlink():
                    continue
                digest = sha256(path)
                assert digest not in seen, f"{path} repeats {seen[digest]}"
                seen[digest] = str(path)


def test_the_default_study_resolves_to_the_package():
    from cohort_engine.conf_folder import default_study_path, shipped_conf_dir
    from cohort_engine.config import load_study
    assert shipped_conf_dir().resolve() == SHIPPED.resolve()
    study = load_study(default_study_path({}))
    assert Path(study.source_path).resolve() == (SHIPPED / "studies" / "her2_paclitaxel_liposome.yaml").resolve()
    assert study.vocabulary_path({}).resolve() == (SHIPPED / "vocabulary" / "drugs.csv").resolve()


def test_configuration_is_read_from_a_py_files_zip(tmp_path):
    """`spark-submit --py-files cohort_engine.zip`: the package and its data in a zip."""
    archive = tmp_path / "cohort_engine.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, Path("cohort_engine") / path.relative_to(PACKAGE))
    probe = (
        "import json, os, sys, cohort_engine\n"
        "from cohort_engine.conf_folder import default_study_path\n"
        "from cohort_engine.config import load_study\n"
        "from cohort_engine.session import load_profile\n"
        "study = load_study(default_study_path())\n"
        "vocab = study.vocabulary_path()\n"
        "again = load_study('conf/studies/docetaxel_hp_first_line.yaml')\n"
        "print(json.dumps({'module': cohort_engine.__file__, 'study': study.name, 'study_file': study.source_path,\n"
        "                  'vocabulary': open(vocab, 'rb').read().hex(), 'other': again.name,\n"
        "                  'master': load_profile('local')['master'], 'sys_path': sys.path}))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: no site-packages .pth files, so the editable install's path to lib/ is not on sys.path.
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=elsewhere, capture_output=True, text=True,
                            env=child_env(PYTHONPATH=os.pathsep.join([str(archive), SITE_PACKAGES])), timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["module"].startswith(str(archive))
    assert str(REPO / "lib") not in seen["sys_path"]
    assert (seen["study"], seen["other"], seen["master"]) == ("her2_paclitaxel_liposome", "docetaxel_hp_first_line",
                                                               "local[*]")
    assert not seen["study_file"].startswith(str(REPO))
    assert bytes.fromhex(seen["vocabulary"]) == (SHIPPED / "vocabulary" / "drugs.csv").read_bytes()


def _copy_source_tree(dest: Path) -> Path:
    """The repository's files as a clone would have them (tracked, or new and not
    ignored) with the working tree's content: the wheel is built from the copy, so
    the build leaves no build/ or egg-info behind in the repository."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what the build reads
        listed = ["pyproject.toml", "README.md", *(p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*"))]
    for rel in filter(None, listed):
        source, target = REPO / rel, dest / rel
        if not os.path.lexists(source) or "__pycache__" in Path(rel).parts:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            if not os.path.lexists(target):
                os.symlink(os.readlink(source), target)
        elif source.is_file() and not target.exists():
            shutil.copy2(source, target)
    return dest


def _build_isolation_flag() -> list[str]:
    """Build with this interpreter's setuptools when it can build the wheel (offline,
    faster); otherwise in pip's isolated build environment, as `databricks bundle
    deploy` does (pyproject.toml's build requirements from the package index)."""
    try:
        import setuptools
        version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
        if version >= (70, 1):  # bdist_wheel is built in
            return ["--no-build-isolation"]
        if version >= (68, 0):
            import wheel  # noqa: F401
            return ["--no-build-isolation"]
    except ImportError:
        pass
    return []


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_with_the_shipped_configuration(tmp_path):
    started = time.perf_counter()
    source = _copy_source_tree(tmp_path / "src")
    dist, fresh, elsewhere, out = (tmp_path / n for n in ("dist", "fresh", "elsewhere", "demo"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run([*pip, "wheel", "--no-deps", *_build_isolation_flag(), "-w", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("cohort_engine-*.whl")

    # The wheel carries every file of the shipped configuration, byte for byte.
    with zipfile.ZipFile(wheel) as z:
        in_wheel = {name.removeprefix("cohort_engine/conf/"): z.read(name) for name in z.namelist()
                    if name.startswith("cohort_engine/conf/") and not name.endswith("/")}
        assert "cohort_engine/cli.py" in z.namelist()
    assert EXPECTED <= set(in_wheel)
    assert {rel: p.read_bytes() for rel, p in shipped_files().items()} == in_wheel

    install = subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(fresh), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    assert (fresh / "cohort_engine" / "conf" / "studies" / "her2_paclitaxel_liposome.yaml").is_file()

    # The console entry (`python -m cohort_engine` = `cohort-engine`) from a folder
    # without conf/, importing the installed copy only: -S leaves out the .pth file of
    # the editable install; PYTHONPATH gives the installed copy, then the dependencies.
    elsewhere.mkdir()
    probe_file = tmp_path / "probe.json"
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import json, os, runpy, sys\n"
        "code = 0\n"
        "try:\n"
        "    runpy.run_module('cohort_engine', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "from cohort_engine.conf_folder import default_study_path\n"
        "from cohort_engine.config import load_study\n"
        "from cohort_engine.session import profile_path\n"
        "bundle_study = load_study('conf/studies/her2_paclitaxel_liposome.yaml')  # the Databricks task's\n"
        "modules = {n: getattr(m, '__file__', None) for n, m in sys.modules.items() if n.split('.')[0] == 'cohort_engine'}\n"
        "json.dump({'code': code, 'modules': modules, 'sys_path': sys.path,\n"
        "           'default_study': str(default_study_path()), 'profile': str(profile_path('local')),\n"
        "           'bundle_study': bundle_study.source_path,\n"
        "           'bundle_vocabulary': str(bundle_study.vocabulary_path())},\n"
        "          open(os.environ['PROBE_FILE'], 'w'))\n"
        "sys.exit(code)\n", encoding="utf-8")
    log = tmp_path / "demo.log"
    with open(log, "w") as sink:
        demo = subprocess.run([sys.executable, "-S", str(driver), "demo", "--patients", "300", "--dir", str(out),
                               "--spark-conf", "spark.ui.showConsoleProgress=false"],
                              cwd=elsewhere, stdout=sink, stderr=subprocess.STDOUT, timeout=900,
                              env=child_env(PYTHONPATH=os.pathsep.join([str(fresh), SITE_PACKAGES]),
                                            PROBE_FILE=str(probe_file)))
    assert demo.returncode == 0, log.read_text()[-4000:]
    probe = json.loads(probe_file.read_text())
    assert probe["code"] in (0, None)
    assert probe["modules"] and all(f is None or f.startswith(str(fresh)) for f in probe["modules"].values()), \
        probe["modules"]
    assert str(REPO / "lib") not in probe["sys_path"]
    installed_conf = fresh / "cohort_engine" / "conf"
    for key in ("default_study", "profile", "bundle_study", "bundle_vocabulary"):
        assert Path(probe[key]).is_relative_to(installed_conf), (key, probe[key])

    assert (out / "out" / "report.html").is_file()
    assert (out / "out" / "tables" / "km_summary.csv").is_file()
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    manifest = json.loads((out / "out" / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["study"]["name"] == "her2_paclitaxel_liposome"
    assert manifest["study_hash"] == load_study(default_study_path({})).config_hash()
    assert manifest["vocabulary_sha256"] == sha256(installed_conf / "vocabulary" / "drugs.csv")
    print(f"wheel build, install and 300-patient demo: {time.perf_counter() - started:.0f} s")
