"""The `factlocate` command line. Each sub-command lives in its own module."""
from __future__ import annotations

import argparse
import os
import sys

from factlocate.errors import FactlocateError

# Sub-command modules, each with `register(subparsers)`.
COMMANDS = ("factlocate.cli.models_cmd", "factlocate.cli.doctor_cmd", "factlocate.cli.trace_cmd",
            "factlocate.cli.edit_cmd", "factlocate.cli.eval_cmd", "factlocate.cli.train_cmd",
            "factlocate.cli.report_cmd", "factlocate.cli.where_cmd", "factlocate.cli.tune_cmd")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="factlocate", description="Locate and edit factual associations in language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FactlocateError as e:
        print(f"factlocate: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system refusal (a full disk, a file where a folder should be): one line, no traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"factlocate: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("factlocate: interrupted; completed results are saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
