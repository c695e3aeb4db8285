"""gradienthide: the project's commands beside the workflow (gradienthide COMMAND --help).

Each subcommand parses its arguments and calls one function of the package; the work is there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _verify(args) -> int:
    from gradienthide import archive

    return archive.verify(archive=args.archive)


def _compare(args, rest: list[str]) -> int:
    from gradienthide import compare

    return compare.main(rest)  # compare parses its own arguments (and --help)


def _table(args) -> int:
    from gradienthide import tables

    try:
        print(tables.render(report_dir=args.report_dir, attacks=args.attacks, tables=args.tables, rounds=args.rounds,
                            uploads=args.uploads))
    except ValueError as error:
        print(f"gradienthide table: {error}", file=sys.stderr)
        return 2
    return 0


def _fetch_clip(args) -> int:
    from gradienthide import clip_labels

    clip_labels.fetch_weights(model=args.model, pretrained=args.pretrained, cache_dir=args.cache_dir)
    return 0


def _write_or_check(*, text: str, output: str | None, check: bool, refresh: str) -> int:
    """Print `text`, write it to `output`, or with `check` say whether `output` holds it already."""
    if output is None:
        print(text, end="")
        return 0
    if check:
        if Path(output).is_file() and Path(output).read_text() == text:
            return 0
        print(f"{output} is stale; rewrite it with: {refresh}", file=sys.stderr)
        return 1
    Path(output).write_text(text)
    return 0


def _config_docs(args) -> int:
    from gradienthide import config_docs

    return _write_or_check(text=config_docs.render(), output=args.output, check=args.check,
                           refresh=f"gradienthide config-docs -o {args.output}")


def _conda_env(args) -> int:
    from gradienthide import lock

    text = lock.conda_env_text(locked=lock.read_lock(args.lock), pyproject=args.pyproject)
    return _write_or_check(text=text, output=args.output, check=args.check, refresh="bash scripts/lock.sh")


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="gradienthide", description=__doc__.splitlines()[0])
    sub = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = sub.add_parser("verify", help="check a run's archive against its manifest and its lock",
                            description="Check an archive (results/archive/results.tar.gz) member by member "
                                        "against its manifest (exit status 1 on a problem), then name each "
                                        "package the running environment has at another version than the "
                                        "archive's lock.")
    verify.add_argument("archive", help="the .tar.gz that `snakemake archive` wrote")
    verify.set_defaults(run=_verify)

    # compare keeps its own parser (also `python -m gradienthide.compare`): its arguments pass through
    compare = sub.add_parser("compare", add_help=False, help="compare two runs cell by cell within their intervals "
                                                             "(gradienthide compare --help)")
    compare.set_defaults(run=_compare, passes_arguments=True)

    table = sub.add_parser("table", help="print a run's results as Markdown tables",
                           description="Print a run's results (its report's summary.csv) as Markdown tables, "
                                       "every number with its interval.")
    table.add_argument("report_dir", nargs="?", default="results/report",
                       help="the run's report directory (default results/report)")
    table.add_argument("--attacks", nargs="*", default=None, help="attack columns, in order (default: all)")
    table.add_argument("--tables", nargs="*", default=["main", "paired", "budget"],
                       choices=["main", "paired", "utility", "budget"])
    table.add_argument("--rounds", nargs="*", type=int, default=None,
                       help="only these attacked rounds' columns (default: every round)")
    table.add_argument("--uploads", nargs="*", default=None,
                       help="only these uploads' columns: deployed, or a probe's batch<b> (default: all)")
    table.set_defaults(run=_table)

    fetch = sub.add_parser("fetch-clip", help="download CLIP weights into a cache directory (needs internet)",
                           description="Download open_clip weights (model, pretrained tag) into a cache "
                                       "directory, where labels.clip.cache_dir finds them offline.")
    fetch.add_argument("--model", required=True, help="e.g. ViT-B-32")
    fetch.add_argument("--pretrained", required=True, help="e.g. laion2b_s34b_b79k")
    fetch.add_argument("--cache-dir", required=True, help="e.g. ~/.cache/gradienthide/clip")
    fetch.set_defaults(run=_fetch_clip)

    docs = sub.add_parser("config-docs", help="write the configuration reference from the config schema",
                          description="Write docs/configuration.md (every key, type, default and "
                                      "description) from the package's config schema.")
    docs.add_argument("-o", "--output", help="file to write (default: print)")
    docs.add_argument("--check", action="store_true", help="only check that --output is current (exit 1 if not)")
    docs.set_defaults(run=_config_docs)

    conda = sub.add_parser("conda-env", help="write the rules' conda environment from the lock",
                           description="Write envs/gradienthide.yaml with the versions requirements.lock pins "
                                       "(run by scripts/lock.sh).")
    conda.add_argument("--lock", default="requirements.lock")
    conda.add_argument("--pyproject", default="pyproject.toml")
    conda.add_argument("-o", "--output", help="file to write (default: print)")
    conda.add_argument("--check", action="store_true", help="only check that --output is current (exit 1 if not)")
    conda.set_defaults(run=_conda_env)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    main_parser = parser()
    args, rest = main_parser.parse_known_args(argv)
    if getattr(args, "passes_arguments", False):
        return args.run(args, rest)
    if rest:
        main_parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
