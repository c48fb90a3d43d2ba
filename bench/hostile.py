"""Hostile-input benchmark: time at 1× and 10× input, this tree against a baseline revision.

Run: ``python bench/hostile.py [--baseline main] [--timeout 30]``. Not a test.

Each case (a run of dots or Arabic question marks for the sentence splitter, a
newline-free "The post … appeared first on" text for the boilerplate clean-up,
nested ``<div>``s for HTML → text, a catastrophic ``re:`` rule term) runs in a
fresh interpreter, once with this working tree's ``monitor`` package and once
with the ``monitor`` package of the baseline revision (``git archive``), under a
timeout, so a quadratic baseline shows as "> N s" instead of freezing the run.
Linear code shows a 10×/1× ratio near 10; quadratic code near 100.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name → (setup code building DATA from N, timed statement, N at 1×)
CASES: dict[str, tuple[str, str, int]] = {
    "sentences: '.' run": (
        "from monitor.sentences import split_sentences; DATA = 'a' + '.' * N + 'b'",
        "split_sentences(DATA)",
        15_000,
    ),
    "sentences: '؟' run": (
        "from monitor.sentences import split_sentences; DATA = 'ا' + '؟' * N + 'ب'",
        "split_sentences(DATA)",
        15_000,
    ),
    "boilerplate: 'appeared first on' tail": (
        "from monitor.articles import strip_boilerplate\n"
        "DATA = ('The post appeared first on ' * (N // 27 + 1))[:N]",
        "strip_boilerplate(DATA)",
        100_000,
    ),
    "html_to_text: nested <div>": (
        "from monitor.articles import html_to_text\nDATA = '<div>' * N + 'text' + '</div>' * N",
        "html_to_text(DATA)",
        10_000,
    ),
    "match: re:(a|aa)+c rule": (
        "from monitor.match import compile_rules\n"
        "from monitor.models import Article, Rule\n"
        "M = compile_rules([Rule(name='slow', any=('re:(a|aa)+c',))])\n"
        "DATA = Article(key='1', feed_id='f', title='t', content='a' * N)",
        "M.match(DATA)",
        30,
    ),
}

RUNNER = """
import sys, time
sys.path.insert(0, {path!r})
N = {n}
{setup}
start = time.perf_counter()
{stmt}
print(time.perf_counter() - start)
"""


def baseline_tree(rev: str, into: Path) -> Path:
    """The ``monitor`` package of ``rev``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "monitor"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(path: Path, setup: str, stmt: str, n: int, timeout: float) -> float | None:
    code = RUNNER.format(path=str(path), n=n, setup=setup, stmt=stmt)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=path,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        print(done.stderr.strip().splitlines()[-1], file=sys.stderr)
        return float("nan")
    return float(done.stdout.strip())


def cell(seconds: float | None, timeout: float) -> str:
    return f"> {timeout:g} s" if seconds is None else f"{seconds:.4f} s"


def ratio(small: float | None, big: float | None) -> str:
    if small is None or big is None or small <= 0:
        return "—"
    return f"{big / small:.1f}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per measurement")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        trees = {
            "this tree": ROOT,
            f"baseline {args.baseline}": baseline_tree(args.baseline, Path(tmp)),
        }
        header = f"{'case':40} {'code':22} {'N':>9} {'1×':>11} {'10×':>11} {'10×/1×':>7}"
        print(header)
        print("-" * len(header))
        for name, (setup, stmt, n) in CASES.items():
            for label, path in trees.items():
                small = measure(path, setup, stmt, n, args.timeout)
                big = measure(path, setup, stmt, n * 10, args.timeout)
                print(
                    f"{name:40} {label:22} {n:>9,} {cell(small, args.timeout):>11} "
                    f"{cell(big, args.timeout):>11} {ratio(small, big):>7}",
                    flush=True,
                )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
