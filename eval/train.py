"""Rebuild every learned part of the answerer, from the CMRC 2018 trial split only.

    python -m eval.train [--data-dir ../shared/data] [--work .wenda/train]

1. ``python -m eval.train_reader --fold even``: the span reader, trained on
   the trial contexts of the even half (kept in --work).
2. ``python -m eval.train_answerer``: the candidate and answerability models
   and their thresholds, fitted on the odd half's questions, which that reader
   never saw (retriever/models/answerer.json).
3. The reader is copied to retriever/models/reader.npz and .json, so the
   models ship together with the reader they were fitted on.

Needs torch (``pip install torch==2.13.0``). About an hour on 2 cores; each
step prints its progress.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .datasets import DEFAULT_DATA_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Folder holding cmrc2018/.")
    ap.add_argument("--work", type=Path, default=Path(".wenda/train"), help="Half-trial readers and the trial index.")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: training needs torch; pip install torch==2.13.0", file=sys.stderr)
        return 1
    from . import train_answerer, train_reader

    import shutil

    from retriever.reader import READER_NPZ

    stem = args.work / "reader-even"
    if not stem.with_suffix(".npz").exists():
        train_reader.train(fold="even", data_dir=args.data_dir, out=stem)
    code = train_answerer.main(["--data-dir", str(args.data_dir), "--work", str(args.work)])
    if code == 0:
        for suffix in (".npz", ".json"):
            shutil.copyfile(stem.with_suffix(suffix), READER_NPZ.with_suffix(suffix))
        print(f"train: wrote {READER_NPZ} and its .json", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
