"""What every benchmark prints first and writes last: the exact command that reproduces it (with the environment that
changes its figures) and its table, printed line by line as the figures come and written to a markdown file."""

import os, shlex, sys
from pathlib import Path


def command(script: str, args: list[str] | None = None) -> str:
    "The command as a user types it: `OMP_NUM_THREADS=1 python bench/x.py ...` (`args`: default this run's)."
    args = sys.argv[1:] if args is None else args
    env = ' '.join(f'{k}={os.environ[k]}' for k in ('OMP_NUM_THREADS',) if k in os.environ)
    return f'{env + " " if env else ""}python {script} {shlex.join(args)}'.rstrip()


class Report:
    "Lines printed as they come and kept; the first is the command and the number of CPUs."

    def __init__(self, script: str, args: list[str] | None = None):
        self.lines: list[str] = []
        self.emit(f'`{command(script, args)}`  ({os.cpu_count()} CPUs)')
        self.emit()

    def emit(self, s: str = ''):
        print(s, flush=True)
        self.lines.append(s)

    def write(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('\n'.join(self.lines) + '\n')
        return path
