"""Wall time of an `ibkd reproduce` command, recorded with the machine it ran on.

    python benchmarks/reproduce_time.py -- scenario1 --budget quick --out runs/s1-quick
    python benchmarks/reproduce_time.py -- scenario2 --budget quick --data-dir DIR --out runs/s2

runs `ibkd reproduce ARGS` in a subprocess (the end of its output shown when it ends) and
adds an entry to `docs/results/timings.json` (`--record`): the command, its wall time, exit
status, the number of runs trained, the CPU model, cores, the load average before and after
(another job on the machine slows the command down) and the versions (`ibkd.runs.environment`).
The README's times are taken from this file. The output folder must not hold finished runs, or
they are skipped and the time says nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ibkd.files import dumps_json
from ibkd.runs import environment, now

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--record", default=str(ROOT / "docs" / "results" / "timings.json"))
    p.add_argument("args", nargs=argparse.REMAINDER, help="after --: ibkd reproduce's arguments")
    a = p.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    command = [sys.executable, "-m", "ibkd", "reproduce", *args]
    load_before = os.getloadavg()
    started = environment()  # the checkout and versions the command starts from
    t0 = time.perf_counter()
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    sys.stderr.write(done.stderr[-2000:])
    summary = [line for line in done.stderr.splitlines() if "runs trained" in line]
    entry = {
        "command": "ibkd reproduce " + shlex.join(args),
        "finished": now(),
        "wall_seconds": round(seconds, 1),
        "exit_status": done.returncode,
        "summary": summary[-1].strip() if summary else None,
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **started,
    }
    path = Path(a.record)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries.append(entry)
    path.write_text(dumps_json(entries, indent=2) + "\n")
    print(dumps_json(entry, indent=2))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
