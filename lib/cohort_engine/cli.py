"""`cohort-engine`: generate, run, demo.

Every entry point is `main(argv, environ)`: tests call it directly, and the
`jobs/` scripts for spark-submit are one line around it. Exit status 0 on
success; otherwise one line on stderr saying why.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import typing
from pathlib import Path

from .config import ConfigError, default_study_path, load_study

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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise UsageError(f"{self.prog}: {message}")


class UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cohort-engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    spark_opts = _Parser(add_help=False)
    spark_opts.add_argument("--master", help="local[*], spark://host:7077, yarn, k8s://...")
    spark_opts.add_argument("--spark-profile", default=None,
                            help="conf/spark/<profile>.yaml (default: local, or COHORT_ENGINE_SPARK_PROFILE)")
    spark_opts.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                            help="extra Spark setting; repeatable")
    spark_opts.add_argument("--quiet", action="store_true", help="no progress lines")

    gen = sub.add_parser("generate", parents=[spark_opts], help="write a synthetic NATDSS-style extract")
    gen.add_argument("--out", required=True, type=Path)
    gen.add_argument("--patients", type=_positive, default=DEMO_PATIENTS)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    gen.add_argument("--clean", action="store_true", help="no injected bad input")
    gen.add_argument("--cutoff", type=_date, default=None, help="data cut-off of the extract")

    run = sub.add_parser("run", parents=[spark_opts], help="run pipeline stages on an extract")
    run.add_argument("--source", type=Path, help="the extract (needed by the ingest stage)")
    run.add_argument("--lake", required=True, type=Path)
    run.add_argument("--out", required=True, type=Path)
    run.add_argument("--study", type=Path, default=None)
    run.add_argument("--cutoff", type=_date, default=None)
    run.add_argument("--stages", default=None, help="comma-separated; default: all")

    demo = sub.add_parser("demo", parents=[spark_opts], help="generate, run everything, write the report")
    demo.add_argument("--patients", type=_positive, default=DEMO_PATIENTS)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--dir", type=Path, default=Path("demo"))
    return parser


def _session(args, environ):
    from .session import build_session, parse_conf_pairs
    profile = args.spark_profile or environ.get("COHORT_ENGINE_SPARK_PROFILE", "local")
    overrides = parse_conf_pairs(args.spark_conf, "--spark-conf")
    return build_session(profile=profile, master=args.master, overrides=overrides, environ=environ)


def _study(args, environ):
    path = args.study if getattr(args, "study", None) else default_study_path(environ)
    return load_study(path).with_cutoff(getattr(args, "cutoff", None))


def cmd_generate(args, environ, progress) -> int:
    from .synth import generate_extract
    spark = _session(args, environ)
    cutoff = args.cutoff or load_study(default_study_path(environ)).data_cutoff
    counts = generate_extract(spark, args.out, patients=args.patients, seed=args.seed, fmt=args.format,
                              clean=args.clean, cutoff=cutoff)
    for table, n in counts.items():
        progress(f"generate {table}: {n} rows")
    return 0


def cmd_run(args, environ, progress) -> int:
    from .lake import Lake
    from .pipeline import RunContext, parse_stages, run
    study = _study(args, environ)
    stages = parse_stages(args.stages)
    spark = _session(args, environ)
    ctx = RunContext(spark=spark, lake=Lake(args.lake, spark, environ), source=args.source, out=args.out,
                     study=study, environ=environ, progress=progress)
    run(ctx, stages)
    return 0


def cmd_demo(args, environ, progress) -> int:
    base = args.dir
    source, lake, out = base / "extract", base / "lake", base / "out"
    common = ["--spark-profile", args.spark_profile] if args.spark_profile else []
    common += [x for kv in args.spark_conf for x in ("--spark-conf", kv)]
    if args.master:
        common += ["--master", args.master]
    # The generator writes truth/manifest.json last: without it the extract is incomplete.
    if not (source / "truth" / "manifest.json").exists():
        code = main(["generate", "--out", str(source), "--patients", str(args.patients),
                     "--seed", str(args.seed), *common], environ, progress)
        if code:
            return code
    code = main(["run", "--source", str(source), "--lake", str(lake), "--out", str(out), *common],
                environ, progress)
    if code == 0:
        progress(f"demo: outputs in {out}")
    return code


COMMANDS = {"generate": cmd_generate, "run": cmd_run, "demo": cmd_demo}


def main(argv: typing.Sequence[str] | None = None, environ: typing.Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        logging.getLogger("py4j").setLevel(logging.WARNING)
    progress = (lambda _msg: None) if args.quiet else log.info

    from .ingest import IngestError
    from .lake import LakeError
    from .pipeline import StageError
    try:
        return COMMANDS[args.command](args, environ, progress)
    except (ConfigError, IngestError, LakeError, StageError) as exc:
        print(f"cohort-engine: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"cohort-engine: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the one place that turns a crash into an exit status
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"cohort-engine: {args.command} failed: {type(exc).__name__}: {first_line}", file=sys.stderr)
        log.debug("failure", exc_info=True)
        return EXIT_STAGE_FAILED


def console_main() -> None:
    sys.exit(main(sys.argv[1:], os.environ))
