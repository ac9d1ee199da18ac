"""Coverage-guided fuzzing of qifsim's file readers with atheris (libFuzzer for Python).

Each target (``targets.py``) runs in its own worker process: the readers' Python code is
instrumented, the seed corpus (``seeds.py``, generated now) is loaded, and libFuzzer mutates
inputs for ``--runs`` executions or ``--seconds``. A worker fails on any finding: an
exception other than the reader's own error type, an event outside the sensor, unsorted
timestamps, one-pass and chunked reads that differ, an input that runs longer than
``--timeout`` seconds, or more than ``--rss-mb`` of memory. The numba decoding kernels are
compiled code (not instrumented); their output is checked against the per-record
reference decoders of ``tests/events_io_reference.py`` on every accepted input.

``lava-exchange`` runs under ``.venv-lava`` (Python 3.10, atheris 2.3.0); the others under
this interpreter. With ``--coverage`` the final corpus is replayed under ``coverage`` and
the line coverage of the readers is reported.

Usage::

    python fuzz/run.py --runs 2000 --seed 1              # the smoke run of make test-all
    python fuzz/run.py aedat4 exchange --seconds 300 --coverage --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from targets import (  # noqa: E402
    EXCHANGE_TARGETS,
    INSTRUMENT,
    NOT_INSTRUMENTED,
    SCRATCH_ENV,
    TARGETS,
    make_target,
)

MAX_LEN = 64 * 1024
#: set to a file path: every input is written there before it runs (debugging signal deaths)
LAST_INPUT_ENV = "QIFSIM_FUZZ_LAST_INPUT"
DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
COVERED_FILES = {
    **{t: "qifsim/events/io/*.py" for t in TARGETS if t not in EXCHANGE_TARGETS},
    "exchange": "qifsim/export/exchange.py",
    "lava-exchange": "hardware/lava/qifsim_lava/exchange.py",
}
#: the file of each target's own reader (its line coverage is reported beside the total)
READER_FILE = {
    "atis-bin": "qifsim/events/io/atis.py",
    "prophesee-dat": "qifsim/events/io/prophesee_dat.py",
    "aedat2": "qifsim/events/io/aedat2.py",
    "aedat31": "qifsim/events/io/aedat31.py",
    "aedat4": "qifsim/events/io/aedat4.py",
    "sniff": "qifsim/events/io/sniff.py",
    "exchange": "qifsim/export/exchange.py",
    "lava-exchange": "hardware/lava/qifsim_lava/exchange.py",
}
#: compiled by numba: exercised, but coverage cannot see inside
NOT_MEASURED = ("qifsim/events/io/_kernels.py",)


# -- worker (runs in the target's environment) ----------------------------------------------
def _load_target(target: str, bases: Path | None, instrument: bool):
    if instrument:
        import atheris

        with atheris.instrument_imports(
            include=list(INSTRUMENT[target]), exclude=list(NOT_INSTRUMENTED)
        ):
            for module in INSTRUMENT[target]:
                __import__(module)
    base_files = sorted(bases.glob("*.h5")) if bases is not None else []
    return make_target(target, base_files)


def worker(target: str, bases: Path | None, libfuzzer_args: list[str]) -> None:
    """Fuzz ``target`` in this process (never returns: libFuzzer exits)."""
    import atheris

    one = _load_target(target, bases, instrument=True)
    one(b"")  # compile the numba kernels before the first timed input
    last = os.environ.get(LAST_INPUT_ENV)

    def test_one_input(data: bytes) -> None:
        if last:  # a process killed by a signal leaves no libFuzzer artifact: keep the input
            Path(last).write_bytes(data)
        one(data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def replay(target: str, bases: Path | None, corpus: Path) -> dict:
    """Run every input of a corpus folder (or one file) once; ``{"inputs", "ok", "refused"}``
    (a finding raises, with its traceback)."""
    one = _load_target(target, bases, instrument=False)
    tally = {"inputs": 0, "ok": 0, "refused": 0}
    for path in sorted(corpus.iterdir()) if corpus.is_dir() else [corpus]:
        tally[one(path.read_bytes())] += 1
        tally["inputs"] += 1
    return tally


# -- driver (runs in .venv) ----------------------------------------------------------------
def _python_for(target: str) -> Path:
    if target == "lava-exchange":
        from qifsim.lava_bridge import find_lava_python

        return find_lava_python()
    return Path(sys.executable)


def _parse(stderr: str) -> dict:
    """libFuzzer's final numbers: executions, cov (instrumented edges), ft (features), corpus."""
    found = DONE.findall(stderr) or STATUS.findall(stderr)
    if not found:
        return {}
    runs, cov, ft, corp = (int(v) for v in found[-1])
    return {"executions": runs, "cov": cov, "ft": ft, "corpus": corp}


def _coverage(target: str, python: Path, bases: Path, corpus: Path, work: Path, env) -> dict:
    """Replay ``corpus`` under ``coverage``: per-file and total line coverage (percent)."""
    data, report = work / ".coverage", work / "coverage.json"
    include = str(REPO / COVERED_FILES[target])
    omit = ",".join(str(REPO / p) for p in NOT_MEASURED)
    cmd = [str(python), "-m", "coverage", "run", f"--data-file={data}", f"--include={include}"]
    cmd += [f"--omit={omit}", str(HERE / "run.py"), "--replay", target, "--bases", str(bases)]
    proc = subprocess.run([*cmd, str(corpus)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    subprocess.run(
        [str(python), "-m", "coverage", "json", f"--data-file={data}", "-o", str(report), "-q"],
        check=True,
        env=env,
    )
    files = json.loads(report.read_text())["files"]
    per_file = {
        str(Path(name).resolve().relative_to(REPO)): round(info["summary"]["percent_covered"], 1)
        for name, info in sorted(files.items())
    }
    lines = sum(f["summary"]["num_statements"] for f in files.values())
    covered = sum(f["summary"]["covered_lines"] for f in files.values())
    return {
        "replayed": tally,
        "line_coverage": round(100.0 * covered / max(lines, 1), 1),
        "reader_line_coverage": per_file.get(READER_FILE[target]),
        "lines": lines,
        "files": per_file,
    }


def fuzz_target(
    target: str,
    work: Path,
    runs: int | None,
    seconds: int | None,
    seed: int,
    timeout: int,
    rss_mb: int,
    with_coverage: bool,
) -> dict:
    """Seed, fuzz and (optionally) measure one target; the result dict has ``"ok"``."""
    from seeds import write_seeds

    corpus, bases, artifacts = work / "corpus", work / "bases", work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    n_seeds = write_seeds(target, corpus, bases)
    python = _python_for(target)
    budget = [f"-runs={runs}"] if runs is not None else [f"-max_total_time={seconds}"]
    args = [
        *budget,
        f"-seed={seed}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_mb}",
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    cmd = [str(python), str(HERE / "run.py"), "--worker", target, "--bases", str(bases), "--"]
    shm = Path("/dev/shm")  # memory-backed where available: the target writes every input
    scratch = Path(tempfile.mkdtemp(prefix="qifsim-fuzz-", dir=shm if shm.is_dir() else None))
    env = {**os.environ, "PYTHONPATH": "", SCRATCH_ENV: str(scratch)}
    try:
        start = time.perf_counter()
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
        result = {
            "target": target,
            "python": f"{python}",
            "seeds": n_seeds,
            "seconds": round(time.perf_counter() - start, 1),
            **_parse(proc.stderr),
            "returncode": proc.returncode,
            "artifacts": sorted(p.name for p in artifacts.iterdir()),
        }
        result["ok"] = proc.returncode == 0 and not result["artifacts"] and "executions" in result
        if not result["ok"]:
            result["log_tail"] = proc.stderr[-3000:]
            again = [str(python), str(HERE / "run.py"), "--replay", target, "--bases", str(bases)]
            for name in result["artifacts"][:3]:  # the Python traceback of each finding
                rep = subprocess.run(
                    [*again, str(artifacts / name)], capture_output=True, text=True, env=env
                )
                result["log_tail"] += f"\n--- {name} replayed:\n{rep.stderr[-3000:]}"
        elif with_coverage:
            result["coverage"] = _coverage(target, python, bases, corpus, work, env)
        return result
    finally:  # the scratch files of the worker (libFuzzer exits without Python's cleanup)
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        split = argv.index("--")
        parser = argparse.ArgumentParser()
        parser.add_argument("--worker", choices=TARGETS)
        parser.add_argument("--bases", type=Path)
        ns = parser.parse_args(argv[:split])
        worker(ns.worker, ns.bases, argv[split + 1 :])
        return 0
    if argv[:1] == ["--replay"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("--replay", choices=TARGETS)
        parser.add_argument("--bases", type=Path)
        parser.add_argument("corpus", type=Path)
        ns = parser.parse_args(argv)
        print(json.dumps(replay(ns.replay, ns.bases, ns.corpus)))
        return 0
    parser = argparse.ArgumentParser(description="Fuzz qifsim's readers (atheris/libFuzzer).")
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--runs", type=int, help="executions per target (default 2000)")
    budget.add_argument("--seconds", type=int, help="fuzzing time per target")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer seed (deterministic)")
    parser.add_argument("--timeout", type=int, default=5, help="seconds one input may take")
    parser.add_argument("--rss-mb", type=int, default=2048, help="memory limit of a worker")
    parser.add_argument("--coverage", action="store_true", help="replay under coverage")
    parser.add_argument("--work", type=Path, default=None, help="keep corpora here")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; targets: {', '.join(TARGETS)}")
    runs = 2000 if args.runs is None and args.seconds is None else args.runs
    root = args.work or Path(tempfile.mkdtemp(prefix="qifsim-fuzz-run-"))
    results = []
    for target in targets:
        res = fuzz_target(
            target,
            root / target,
            runs,
            args.seconds,
            args.seed,
            args.timeout,
            args.rss_mb,
            args.coverage,
        )
        results.append(res)
        cov = res.get("coverage", {}).get("line_coverage")
        own = res.get("coverage", {}).get("reader_line_coverage")
        line = (
            f"{target:14s} {'ok' if res['ok'] else 'FINDING':8s} "
            f"execs {res.get('executions', '?'):>8} cov {res.get('cov', '?'):>5} "
            f"ft {res.get('ft', '?'):>6} corpus {res.get('corpus', '?'):>5} "
            f"seeds {res['seeds']:>3} {res['seconds']:>7.1f} s"
        )
        if cov is not None:
            line += f"  lines: {READER_FILE[target].rsplit('/', 1)[-1]} {own}%, all {cov}%"
        print(line, flush=True)
        if not res["ok"]:
            print(res.get("log_tail", ""), file=sys.stderr)
    if args.json is not None:
        from qifsim.atomic import write_json_atomic

        write_json_atomic(args.json, {"work": str(root), "results": results})
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
