"""custval at scale: `custval bench` at several sizes, one table for benchmarks/RESULTS.md.

    uv run python benchmarks/scale.py                                # 1M and 10M, 3 rounds each
    uv run python benchmarks/scale.py --orders 1000000 10000000 100000000 --rounds 1

Each size is one `custval bench` (the generated Parquet file is kept under --workdir and reused;
the baseline -- one bare DuckDB query computing the lifetimes RFM summary -- and `custval run`
alternate in the same run). The table gives, per size: the median wall time of both, their
ratio, custval's peak RSS and per-stage seconds, and the ratio of each size's wall time to the
previous size's (cost linear in orders means ~10x per 10x). It is written between the markers
in RESULTS.md (replacing the previous table) with a description of the machine, and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
BEGIN = "<!-- scale.py: begin -->"
END = "<!-- scale.py: end -->"
STAGES = ("extract", "validate", "stage", "marts", "publish", "manifest")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}, "
        f"commit {commit or '?'}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def bench(orders: int, rounds: int, workdir: Path, config: Path | None) -> dict:
    command = [sys.executable, "-m", "pipelines", "bench", "--orders", str(orders)]
    command += ["--rounds", str(rounds), "--workdir", str(workdir / f"orders-{orders}")]
    command += ["--config", str(config)] if config else []
    print(f"== {' '.join(command[2:])}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"custval bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(done.stdout, flush=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def table(results: list[dict]) -> str:
    head = (
        "| orders | customers | bare DuckDB s | custval run s | ratio | peak RSS MB | "
        + " | ".join(STAGES)
        + " | × previous size |"
    )
    lines = [head, "|" + " ---: |" * (head.count("|") - 1)]
    previous = None
    for r in results:
        stages = " | ".join(
            f"{r['stages'][s]['seconds']:.1f}" if s in r["stages"] else "–" for s in STAGES
        )
        growth = f"{r['custval']['wall_seconds'] / previous:.1f}" if previous else "–"
        customers = f"{r['customers']:,}" if r.get("customers") else "–"
        lines.append(
            f"| {r['orders']:,} | {customers} | {r['baseline']['wall_seconds']:.1f} | "
            f"{r['custval']['wall_seconds']:.1f} | {r['wall_ratio']:.1f} | "
            f"{r['custval']['peak_rss_mb']:,.0f} | {stages} | {growth} |"
        )
        previous = r["custval"]["wall_seconds"]
    return "\n".join(lines)


def write(results: list[dict], args: argparse.Namespace) -> str:
    loads = ", ".join(f"{r['load_average'][0]:.2f}" for r in results)
    body = "\n".join(
        [
            BEGIN,
            "",
            f"Machine: {machine()}. Load average at the end of each size: {loads}. "
            f"{args.rounds} alternating round(s) per size (medians); memory budget "
            f"(`resources.memory_limit`) {results[0].get('memory_limit')}.",
            "",
            "```sh",
            "uv run python benchmarks/scale.py --orders "
            + " ".join(str(r["orders"]) for r in results)
            + f" --rounds {args.rounds}",
            "```",
            "",
            table(results),
            "",
            END,
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n## custval at scale (`benchmarks/scale.py`)\n\n" + body + "\n"
    RESULTS.write_text(text)
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=HERE / "data" / "scale")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = [bench(n, args.rounds, args.workdir, args.config) for n in args.orders]
    print(table(results) if args.no_write else write(results, args))


if __name__ == "__main__":
    main()
