"""`cohort-engine`: generate, run, demo.

Every entry point is `main(argv, environ)`: tests call it directly, and the
`jobs/` scripts for spark-submit are one line around it. Exit status 0 on
success; otherwise one line on stderr saying why.

`run` holds the lake's lock (`lake_lock.LakeLock`) from before Spark starts until it
ends, so a second run on the same lake fails at once (or waits, --wait-lock).
`run --incremental` merges a new monthly extract into bronze; `run
--as-of-manifest FILE` replays later stages on the Delta versions a manifest names.

Progress (`progress_display.py`): a live line per stage on a terminal, plain log lines
off a terminal or under a scheduler, none with --quiet; `--progress` or
`COHORT_ENGINE_PROGRESS` (rich, plain, none) chooses.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
import typing
from pathlib import Path

from .conf_folder import default_study_path
from .config import load_study
from .errors import CannotWrite, ConfigError, UsageError, UserError

log = logging.getLogger("cohort_engine")

EXIT_BAD_INPUT = 2
# The generator's documented demo size: a seed-study cohort of about 570 patients.
DEMO_PATIENTS = 40_000
EXIT_STAGE_FAILED = 1


def _date(text: str) -> dt.date | None:
    if not text.strip():  # schedulers pass an empty parameter for "the study's default"
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _number(parse: typing.Callable[[str], float], allowed: typing.Callable[[float], bool], expected: str):
    """An argparse type: the number `parse` reads from the text, when `allowed`; text that
    is no number at all gets the same one-line message as a number out of range."""
    def read(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return read


_share = _number(float, lambda value: 0.0 <= value <= 1.0, "a share from 0 to 1 (0.10 = 10 %)")
_positive = _number(int, lambda value: value > 0, "a positive whole number")
_seconds = _number(float, lambda value: value >= 0, "a number of seconds (0 or more)")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise UsageError(f"{self.prog}: {message}")


def _load_mode(text: str) -> str:
    mode = text.strip() or "full"  # schedulers pass an empty parameter for the default
    if mode not in ("full", "incremental"):
        raise argparse.ArgumentTypeError(f"expected full or incremental, got {text!r}")
    return mode


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cohort-engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    spark_opts = _Parser(add_help=False)
    spark_opts.add_argument("--master", help="local[*], spark://host:7077, yarn, k8s://...")
    spark_opts.add_argument("--spark-profile", default=None,
                            help="conf/spark/<profile>.yaml (default: local, or COHORT_ENGINE_SPARK_PROFILE)")
    spark_opts.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                            help="extra Spark setting; repeatable")
    spark_opts.add_argument("--quiet", action="store_true", help="no progress lines (--progress none)")
    spark_opts.add_argument("--progress", choices=("rich", "plain", "none"), default=None,
                            help="rich: a live line per stage with rows, rate and elapsed time; plain: one log "
                                 "line per step with the same; none: no progress lines (default: "
                                 "COHORT_ENGINE_PROGRESS, else plain when stderr is no terminal or a "
                                 "scheduler runs the engine, rich otherwise)")

    gen = sub.add_parser("generate", parents=[spark_opts], help="write a synthetic NATDSS-style extract")
    gen.add_argument("--out", required=True, type=Path)
    gen.add_argument("--patients", type=_positive, default=DEMO_PATIENTS)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    gen.add_argument("--encoding", choices=("utf-8", "gb18030"), default="utf-8",
                     help="CSV only: the file encoding (default utf-8)")
    gen.add_argument("--parquet-writer", choices=("spark", "pandas"), default="spark",
                     help="Parquet only: spark (dates as text) or pandas (DataFrame.to_parquet, "
                          "dates as datetime64[ns]); default spark")
    gen.add_argument("--clean", action="store_true", help="no injected bad input")
    gen.add_argument("--hospital-forms", action="store_true",
                     help="with --clean: still print drug names and write dates as hospital systems do "
                          "(noisy extracts always do)")
    gen.add_argument("--confounded-taxane", action="store_true",
                     help="HER2+ antibody + taxane first lines: the taxane depends on covariates, with planted "
                          "effects and their truth in truth/potential_outcomes and truth/effects")
    gen.add_argument("--cutoff", type=_date, default=None, help="data cut-off of the extract")

    run = sub.add_parser("run", parents=[spark_opts], help="run pipeline stages on an extract")
    run.add_argument("--source", type=Path, help="the extract (needed by the ingest stage)")
    run.add_argument("--lake", required=True, type=Path)
    run.add_argument("--out", required=True, type=Path)
    run.add_argument("--study", type=Path, action="append", default=None, metavar="FILE",
                     help="a study file (default: the seed study); repeatable: several studies run over one "
                          "build of the lines, each in its own sub-folder of --out")
    run.add_argument("--cutoff", type=_date, default=None)
    run.add_argument("--stages", default=None,
                     help="comma-separated; default: all (with --as-of-manifest: analysis)")
    run.add_argument("--incremental", action="store_true",
                     help="merge the extract into the lake's bronze tables (a new monthly extract) "
                          "instead of replacing them")
    run.add_argument("--mode", type=_load_mode, default=None, metavar="full|incremental",
                     help="how ingest loads the extract; --incremental is --mode incremental "
                          "(a valued form for scheduler parameters; empty means full)")
    run.add_argument("--as-of-manifest", type=Path, default=None, metavar="FILE",
                     help="replay: rerun stages on the Delta versions this run_manifest.json names; "
                          "the study and cut-off come from it")
    run.add_argument("--replay-lake", type=Path, default=None, metavar="DIR",
                     help="where a replay writes the tables it rebuilds (default: a folder under "
                          "<lake>/_replay, removed after the run)")
    run.add_argument("--wait-lock", type=_seconds, default=0.0, metavar="SECONDS",
                     help="wait this long for another run on the same lake to finish (default: fail at once)")
    run.add_argument("--encoding", default="auto", metavar="auto|utf-8|gb18030|gbk",
                     help="encoding of the extract's CSV files (default auto: told from each file's bytes)")
    run.add_argument("--source-timezone", default="Asia/Shanghai", metavar="ZONE",
                     help="the extract's time zone: a date-time with an offset is dated in it "
                          "(default Asia/Shanghai)")
    run.add_argument("--max-rejected-share", type=_share, default=0.10, metavar="SHARE",
                     help="stop the run when one quarantine reason rejects more than this share of a "
                          "table's rows, or more than this share of prescriptions match no drug "
                          "(default 0.10)")
    run.add_argument("--vocabulary-override", type=Path, action="append", default=[], metavar="FILE",
                     help="a CSV of drug-vocabulary rows extending (and for the names it lists, "
                          "replacing) the study's vocabulary; repeatable, later files win")

    study = sub.add_parser("study", help="check a study file, list the shipped studies (no Spark)")
    study_sub = study.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    check = study_sub.add_parser("check", help="validate a study file and print its attrition plan in words")
    check.add_argument("file", type=Path)
    study_sub.add_parser("list", help="the studies shipped in the configuration folder")

    demo = sub.add_parser("demo", parents=[spark_opts], help="generate, run everything, write the report")
    demo.add_argument("--patients", type=_positive, default=DEMO_PATIENTS)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--dir", type=Path, default=Path("demo"))
    return parser


def _session(args, environ, input_folder: Path | None = None):
    """The run's session; `input_folder` (the extract, or the lake's bronze tables) sizes the
    shuffle partitions of a profile that leaves them `auto`."""
    from .session import build_session, parse_conf_pairs
    from .spark_sizing import folder_bytes
    profile = args.spark_profile or environ.get("COHORT_ENGINE_SPARK_PROFILE", "local")
    overrides = parse_conf_pairs(args.spark_conf, "--spark-conf")
    extract_bytes = folder_bytes(input_folder) if input_folder is not None else None
    return build_session(profile=profile, master=args.master, overrides=overrides, environ=environ,
                         extract_bytes=extract_bytes)


def _studies(args, environ) -> list:
    paths = getattr(args, "study", None) or [default_study_path(environ)]
    return [load_study(path, environ).with_cutoff(getattr(args, "cutoff", None)) for path in paths]


def cmd_generate(args, environ, progress) -> int:
    from .progress_lines import DONE, START, ProgressLine
    from .synth import generate_extract
    encoding = getattr(args, "encoding", "utf-8")
    writer = getattr(args, "parquet_writer", "spark")
    if encoding != "utf-8" and args.format != "csv":
        print(f"cohort-engine generate: --encoding {encoding} applies to --format csv only", file=sys.stderr)
        return EXIT_BAD_INPUT
    if writer != "spark" and args.format != "parquet":
        print(f"cohort-engine generate: --parquet-writer {writer} applies to --format parquet only",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    progress(ProgressLine("stage generate: start", "generate", event=START))
    started = time.perf_counter()
    spark = _session(args, environ)
    cutoff = args.cutoff or load_study(default_study_path(environ)).data_cutoff
    generate_extract(spark, args.out, patients=args.patients, seed=args.seed, fmt=args.format,
                     clean=args.clean, cutoff=cutoff, progress=progress, encoding=encoding, parquet_writer=writer,
                     hospital_forms=True if args.hospital_forms else None,
                     confounded_taxane=getattr(args, "confounded_taxane", False))
    progress(ProgressLine(f"stage generate: done in {time.perf_counter() - started:.1f}s", "generate", event=DONE))
    return 0


def _writable_folder(path: Path, option: str) -> Path:
    """Create `path` if needed and prove it writable, before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".cohort-engine-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CannotWrite(f"cannot write {option} {path}: {exc.strerror or exc}") from None
    return path


def _replay_plan(args, environ):
    """(manifest, study, stages) of a replay, every option checked against the manifest."""
    from .manifest import engine_version, file_sha256, load_manifest, study_of_manifest
    from .pipeline import replay_stages
    source = args.as_of_manifest
    if args.incremental:
        raise ConfigError("--as-of-manifest replays a run on the lake as it was; it loads no extract "
                          "(leave out --incremental)")
    manifest = load_manifest(source)
    study = study_of_manifest(manifest, str(source))
    if args.cutoff is not None and args.cutoff != study.data_cutoff:
        raise ConfigError(f"--cutoff {args.cutoff.isoformat()} differs from the data cut-off "
                          f"{study.data_cutoff.isoformat()} of {source}")
    if args.study is not None:
        if len(args.study) > 1:
            raise ConfigError("--as-of-manifest replays one study: give one --study (or none)")
        given = load_study(args.study[0], environ).with_cutoff(study.data_cutoff)
        if given.config_hash() != manifest["study_hash"]:
            raise ConfigError(f"{args.study[0]} is not the study {source} ran (study hash "
                              f"{given.config_hash()[:12]} vs {manifest['study_hash'][:12]}); leave out "
                              "--study to replay the manifest's own")
        study = given  # same configuration; its file locates a relative vocabulary
    stages = replay_stages(args.stages)
    recorded = manifest.get("vocabulary_sha256")
    if "lines" in stages and recorded and file_sha256(study.vocabulary_path(environ)) != recorded:
        raise ConfigError(f"the drug vocabulary {study.vocabulary_path(environ)} changed since {source} ran: "
                          "lines rebuilt from it would differ (replay later stages only)")
    if (args.out / "run_manifest.json").resolve() == Path(source).resolve():
        raise ConfigError(f"--out {args.out} holds the manifest being replayed: replay into another folder")
    if manifest.get("engine_version") not in (None, engine_version()):
        log.warning("replay: %s was written by engine %s, this is %s; results may differ",
                    source, manifest["engine_version"], engine_version())
    return manifest, study, stages


def _vocabulary_overrides(args, manifest: dict | None, stages: list[str]) -> tuple[Path, ...]:
    """The run's vocabulary override files, each checked readable; a replay takes the manifest's."""
    from .manifest import file_sha256
    given = tuple(args.vocabulary_override)
    if manifest is not None:
        recorded = manifest.get("vocabulary_overrides") or []
        if given and [str(p.resolve()) for p in given] != [r["path"] for r in recorded]:
            raise ConfigError("--vocabulary-override differs from the override files the replayed run used "
                              "(leave it out: a replay takes them from the manifest)")
        given = tuple(Path(r["path"]) for r in recorded)
        if "lines" in stages:
            for r in recorded:
                if file_sha256(Path(r["path"])) != r["sha256"]:
                    raise ConfigError(f"the vocabulary override {r['path']} changed since the replayed run: "
                                      "lines rebuilt from it would differ (replay later stages only)")
        return given
    for path in given:
        if not path.is_file():
            raise ConfigError(f"--vocabulary-override {path}: no such file")
    return given


def cmd_run(args, environ, progress) -> int:
    from .lake import Lake
    from .lake_lock import LakeLock
    from .manifest import pinned_versions
    from .pipeline import RunContext, check_studies_share_the_lake, parse_stages, run
    if args.incremental and args.mode == "full":
        raise ConfigError("--incremental contradicts --mode full")
    args.incremental = args.incremental or args.mode == "incremental"
    replay = args.as_of_manifest is not None
    if replay:
        manifest, study, stages = _replay_plan(args, environ)
        if not args.lake.is_dir():
            raise CannotWrite(f"--lake {args.lake} does not exist: a replay reads an existing lake")
    else:
        studies = _studies(args, environ)
        check_studies_share_the_lake(studies)
        study = studies[0]
        stages = parse_stages(args.stages)
        _writable_folder(args.lake, "--lake")
    _writable_folder(args.out, "--out")
    from .extract_files import ExtractSettings
    extract = ExtractSettings(encoding=args.encoding, timezone=args.source_timezone,
                              max_rejected_share=args.max_rejected_share)
    overrides = _vocabulary_overrides(args, manifest if replay else None, stages)

    lock = scratch = None
    if not replay:  # a replay reads pinned versions only and writes to its own scratch lake
        mode = " --incremental" if args.incremental else ""
        lock = LakeLock(args.lake, command=f"cohort-engine run --stages {','.join(stages)}{mode}",
                        progress=progress).acquire(args.wait_lock)
    try:
        # A replay and later stages read the lake's bronze tables, the extract as it was loaded.
        spark = _session(args, environ, args.source if args.source is not None else args.lake / "bronze")
        if replay:
            scratch = args.replay_lake or (args.lake / "_replay" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            lake = Lake(args.lake, spark, environ, pinned_versions=pinned_versions(manifest), write_root=scratch)
            # No timestamp of the original run: under <out>, dates other than this run's are audited as data.
            replay_of = {"manifest": str(args.as_of_manifest.resolve()), "study_hash": manifest["study_hash"],
                         "replay_lake": str(Path(scratch).resolve())}
            progress(f"replay of {args.as_of_manifest}: {len(lake.pinned_versions)} tables pinned, "
                     f"stages {','.join(stages)}")
        else:
            lake, replay_of = Lake(args.lake, spark, environ), None
            removed = lake.remove_unfinished_writes()
            if removed:
                progress(f"lake: removed {len(removed)} unfinished write folders of an interrupted run")
        ctx = RunContext(spark=spark, lake=lake, source=args.source, out=args.out, study=study,
                         environ=environ, progress=progress, incremental=args.incremental, replay_of=replay_of,
                         extract=extract, vocabulary_overrides=overrides)
        run(ctx, stages, studies=None if replay else studies)
    finally:
        if lock is not None:
            lock.release()
        if scratch is not None and args.replay_lake is None:
            shutil.rmtree(scratch, ignore_errors=True)
            _remove_empty(args.lake / "_replay")
    return 0


def _remove_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def cmd_demo(args, environ, progress) -> int:
    base = args.dir
    source, lake, out = base / "extract", base / "lake", base / "out"
    common = ["--spark-profile", args.spark_profile] if args.spark_profile else []
    common += [x for kv in args.spark_conf for x in ("--spark-conf", kv)]
    if args.master:
        common += ["--master", args.master]
    # The generator writes truth/manifest.json last: without it the extract is incomplete.
    if not (source / "truth" / "manifest.json").exists():
        code = _dispatch(["generate", "--out", str(source), "--patients", str(args.patients),
                          "--seed", str(args.seed), *common], environ, progress)
        if code:
            return code
    code = _dispatch(["run", "--source", str(source), "--lake", str(lake), "--out", str(out), *common],
                     environ, progress)
    if code:
        return code
    progress(f"demo: report in {out / 'report.html'}")
    # The shipped comparative studies too, on the lake just built (their own cohort onward),
    # each under <dir>/<study name>: the demo shows a comparison of two arms as well.
    from .studies import shipped_studies
    for path, study in shipped_studies(environ):
        if isinstance(study, str) or study.comparison is None:
            continue
        code = _dispatch(["run", "--source", str(source), "--lake", str(lake), "--out", str(base / study.name),
                          "--study", str(path), "--stages", "cohort,endpoints,analysis", *common], environ, progress)
        if code:
            return code
        progress(f"demo: comparative study {study.name}: report in {base / study.name / 'report.html'}")
    return 0


def cmd_study(args, environ, progress) -> int:
    """`study check FILE`: the plan in words, or one line naming the key; `study list`."""
    from .studies import attrition_plan, shipped_studies
    from .vocabulary import class_names
    if args.study_command == "check":
        study = load_study(args.file, environ)
        print("\n".join(attrition_plan(study, class_names(study.vocabulary_path(environ)))))
        return 0
    for path, study in shipped_studies(environ):
        if isinstance(study, str):
            print(f"{path.stem}\t{path}\tNOT VALID: {study}")
        else:
            print(f"{study.name}\t{path}\t{study.report.title}")
    return 0


def _dispatch(argv: list[str], environ, progress) -> int:
    """Run one command inside another (demo = generate + run); errors reach main's handler."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args, environ, progress)


COMMANDS = {"generate": cmd_generate, "run": cmd_run, "study": cmd_study, "demo": cmd_demo}


def main(argv: typing.Sequence[str] | None = None, environ: typing.Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    from .progress_display import open_display, progress_mode
    try:  # `study` reports no progress: it has no --progress
        mode = progress_mode(args.progress, args.quiet, sys.stderr.isatty(), environ) \
            if hasattr(args, "progress") else "none"
    except UserError as exc:
        print(f"cohort-engine: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = open_display(mode, log.info)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, handlers=[progress.log_handler()])
        logging.getLogger("py4j").setLevel(logging.WARNING)

    try:
        return COMMANDS[args.command](args, environ, progress)
    except UserError as exc:  # bad input, configuration or lake state (errors.py): one line, exit 2
        print(f"cohort-engine: {_first_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"cohort-engine: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the one place that turns a crash into an exit status
        print(f"cohort-engine: {args.command} failed: {type(exc).__name__}: {_first_line(exc)[:300]}",
              file=sys.stderr)
        log.debug("failure", exc_info=True)
        return EXIT_STAGE_FAILED
    finally:
        progress.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def console_main() -> None:
    sys.exit(main(sys.argv[1:], os.environ))
