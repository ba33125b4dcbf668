"""Run every benchmark in bench/ (each module with a ``main``), one process each.

A benchmark prints its figures and ``RESULT <name> <value> <unit> (floor <f>, ratio <r>)``
lines; it never fails for being slow. Usage: ``python -m bench [name ...]``.
"""

import pkgutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SKIP = {"__main__", "common"}


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name not in SKIP)
    wanted = argv or names
    failed = []
    for name in wanted:
        print(f"== bench.{name}", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks that could not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
