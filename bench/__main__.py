"""``python -m bench [throughput|latency|deadhosts|overhead|memory|memory-hostile|monitors|all] [--quick]``:
run, save and print."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import deadhosts, latency, memory, monitors, overhead, throughput
from bench.report import machine, machine_markdown, markdown

RESULTS = Path(__file__).parent / "results"

#: Full-size runs (``make bench``) and quick ones (``--quick``, to check the harness).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "throughput": {"pages": 60, "rounds": 2},
        "latency": {"captures": 40},
        "deadhosts": {"pages": 10},
        "overhead": {"jobs": 3000, "seconds": 15.0},
        "memory": {"files": 20, "captures": 500},
        "memory-hostile": {"hostile": 30},
        "monitors": {"monitors": 10_000},
    },
    "quick": {
        "throughput": {"pages": 12, "rounds": 1},
        "latency": {"captures": 8, "warmup": 2},
        "deadhosts": {"pages": 2},
        "overhead": {"jobs": 300, "seconds": 3.0, "counted_jobs": 100},
        "memory": {"files": 20, "captures": 40},
        "memory-hostile": {"hostile": 12},
        "monitors": {"monitors": 500},
    },
}

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": throughput.run,
    "latency": latency.run,
    "deadhosts": deadhosts.run,
    "overhead": overhead.run,
    "memory": memory.run,
    "memory-hostile": memory.run_hostile,
    "monitors": monitors.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true",
                        help="small runs that check the harness (results are not saved)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where to write <name>.json and <name>.md")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    size = SIZES["quick" if args.quick else "full"]
    out: Path = args.results
    if args.quick and args.results == RESULTS:
        out = Path(tempfile.mkdtemp(prefix="shotline-bench-results-"))
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    sections = [machine_markdown(info)]
    print(sections[0], flush=True)
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"shotline-bench-{name}-") as workdir:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            result = BENCHMARKS[name](Path(workdir), **size[name])
        result["machine"] = info
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        section = markdown(name, result)
        (out / f"{name}.md").write_text(machine_markdown(info) + "\n" + section)
        sections.append(section)
        print(section, flush=True)
    if args.which == "all":
        (out / "all.md").write_text("\n".join(sections))
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
