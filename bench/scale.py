"""How time and memory grow with the data: synthetic hourly panels, fit + evaluate per model, each cell in its own
process.

    python bench/scale.py                           # the table in bench/tables/scale.md (long 10..10,000, wide 7..321)
    python bench/scale.py --long 10 100 --wide 7 --models linear   # a quick look

Data: `tsforge.data.synthetic_panel` (daily + weekly seasonality, trend, noise; seeded), written once to parquet under
--data. Long cells: N series x 2,000 rows (format long, L=168, H=24, per-series ratio split 0.7/0.1/0.2). Wide cells:
C columns x 17,420 rows (mode M, L=336, H=96, ratio split), plus ETTh1 M H=720 (`linear`, the ETT protocol).
Each cell runs in a fresh process: `base MB` is its RSS after importing tsforge and the model's libraries, `peak MB`
its peak RSS (ru_maxrss), `above/data` = (peak - base) / (raw float64 size of the series values). `load s` is reading
and checking the file and fitting the scalers, `fit+eval s` fitting and scoring validation and test (in batches,
forecasts not kept). The torch and tree models use small budgets here (see MODEL_PARAMS): this measures how cost
grows, not accuracy.
"""

import argparse, os, resource, subprocess, sys, tempfile, time, json
from pathlib import Path

from report import Report  # bench/report.py: the command line and the table

ROOT = Path(__file__).resolve().parent.parent
MODEL_PARAMS = {
    'linear': [],
    'lightgbm': ['+model_params.n_estimators=100', '+model_params.num_threads=1'],
    'dlinear': [
        '+model_params.epochs=1',
        '+model_params.batch_size=512',
        '+model_params.progress=false',
        '+model_params.num_threads=1',
    ],
}
LONG_ROWS, WIDE_ROWS = 2000, 17420


def data_file(kind: str, n: int, folder: Path) -> Path:
    "The synthetic panel for a cell, made once (in this process) and reused."
    from tsforge.data import synthetic_panel

    f = folder / f'{kind}-{n}.parquet'
    if not f.exists():
        rows = LONG_ROWS if kind == 'long' else WIDE_ROWS
        df = synthetic_panel(n, rows, seed=n, format=kind)
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(f, index=False)
    return f


def cell(kind: str, n: int, model: str, folder: str) -> dict:
    "One cell, run in a fresh process (`--cell`): prints a JSON line."
    import numpy as np  # noqa: F401
    from tsforge.config import load_config
    from tsforge.train import fit_evaluate
    from tsforge.prepare import prepare
    from tsforge.models import model_class
    import pyarrow.parquet  # noqa: F401  (the parquet reader and the model's libraries are part of the baseline)

    model_class(model)
    base = _rss_mb()
    if kind == 'ett':
        ov = ['mode=M', 'horizon=720', f'model={model}', *MODEL_PARAMS[model]]
        cfg = load_config('etth1', ov)
        values = 17420 * 7
    else:
        f = Path(folder) / f'{kind}-{n}.parquet'
        if kind == 'long':
            data = f'{{path: {f}, format: long, id_col: unique_id, time_col: ds, target: [y]}}'
            ov, values = ['input_length=168', 'horizon=24'], n * LONG_ROWS
        else:
            data = f'{{path: {f}, time_col: ds, target: [s0]}}'
            ov, values = ['mode=M', 'input_length=336', 'horizon=96'], n * WIDE_ROWS
        y = Path(folder) / f'{kind}-{n}.yaml'
        y.write_text(f'defaults: [base, _self_]\nname: scale\ndata: {data}\nregistry: {{enabled: false}}\n')
        cfg = load_config(str(y), [*ov, f'model={model}', *MODEL_PARAMS[model], 'split.kind=ratio'])
    _reset_peak()
    t0 = time.perf_counter()
    prep = prepare(cfg)
    t1 = time.perf_counter()
    ev = fit_evaluate(cfg, prep, keep_predictions=False)
    t2 = time.perf_counter()
    peak = _peak_mb()
    data_mb = values * 8 / 2**20
    return {
        'kind': kind,
        'n': n,
        'model': model,
        'load_s': t1 - t0,
        'fit_eval_s': t2 - t1,
        'base_mb': base,
        'peak_mb': peak,
        'data_mb': data_mb,
        'ratio': (peak - base) / data_mb,
        'test_mse': ev.metrics['test_mse'],
        'train_windows': len(prep.windows('train')),
        'test_windows': ev.metrics['test_windows'],
    }


def _peak_mb() -> float:
    "This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent across fork + exec)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak():
    "Start the peak from the current RSS, where the kernel allows it (writing 5 to clear_refs resets VmHWM)."
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        pass


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        '--long', nargs='*', type=int, default=[10, 100, 1000, 10000], help='numbers of series (long format)'
    )
    ap.add_argument('--wide', nargs='*', type=int, default=[7, 70, 321], help='numbers of columns (wide, mode M)')
    ap.add_argument('--models', nargs='+', default=['linear', 'lightgbm', 'dlinear'])
    ap.add_argument(
        '--max-long',
        nargs='*',
        default=['dlinear=1000', 'lightgbm=1000'],
        metavar='MODEL=N',
        help='skip long cells above N series for MODEL (time cap)',
    )
    ap.add_argument(
        '--max-wide',
        nargs='*',
        default=['lightgbm=70'],
        metavar='MODEL=N',
        help='skip wide cells above N columns for MODEL (time cap)',
    )
    ap.add_argument('--ett', action=argparse.BooleanOptionalAction, default=True, help='ETTh1 M H=720 linear cell')
    ap.add_argument(
        '--data',
        default=os.path.join(tempfile.gettempdir(), 'tsforge-scale'),
        help='folder for the generated parquet files',
    )
    ap.add_argument('--timeout', type=int, default=600, help='seconds per cell')
    ap.add_argument('--out', default='bench/results/scale.md')
    ap.add_argument('--cell', nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.cell:
        print(json.dumps(cell(a.cell[0], int(a.cell[1]), a.cell[2], a.cell[3])))
        return
    caps = {
        k: {m: int(v) for m, v in (x.split('=') for x in lim)}
        for k, lim in (('long', a.max_long), ('wide', a.max_wide))
    }
    report = Report('bench/scale.py')
    emit = report.emit
    emit(
        '| data | series / columns | rows | model | load s | fit+eval s | base MB | peak MB | data MB | '
        '(peak-base)/data | test MSE |'
    )
    emit('|---|---|---|---|---|---|---|---|---|---|---|')
    cells = [('long', n, m) for m in a.models for n in a.long if n <= caps['long'].get(m, 10**9)]
    cells += [('wide', n, m) for m in a.models for n in a.wide if n <= caps['wide'].get(m, 10**9)]
    if a.ett and 'linear' in a.models:
        cells.append(('ett', 7, 'linear'))
    for kind, n, model in cells:
        if kind != 'ett':  # made in a child process, so that this one stays small
            subprocess.run(
                [
                    sys.executable,
                    '-c',
                    f'import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv = [""]; '
                    f'from bench.scale import data_file; from pathlib import Path; '
                    f'data_file({kind!r}, {n}, Path({a.data!r}))',
                ],
                check=True,
                cwd=ROOT,
            )
        try:
            r = subprocess.run(
                [sys.executable, __file__, '--cell', kind, str(n), model, a.data],
                capture_output=True,
                text=True,
                timeout=a.timeout,
                cwd=ROOT,
            )
            res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None
        except subprocess.TimeoutExpired:
            r, res = None, None
        label = {'long': 'long', 'wide': 'wide M', 'ett': 'ETTh1 M H=720'}[kind]
        rows = {'long': LONG_ROWS, 'wide': WIDE_ROWS, 'ett': 17420}[kind]
        if res is None:
            why = 'timeout' if r is None else (r.stderr.strip().splitlines() or ['failed'])[-1][:80]
            emit(f'| {label} | {n:,} | {rows:,} | {model} | – | – | – | – | – | – | {why} |')
            continue
        emit(
            f'| {label} | {n:,} | {rows:,} | {model} | {res["load_s"]:.1f} | {res["fit_eval_s"]:.1f} | '
            f'{res["base_mb"]:.0f} | {res["peak_mb"]:.0f} | {res["data_mb"]:.1f} | {res["ratio"]:.1f} | '
            f'{res["test_mse"]:.4f} |'
        )
    if a.out:
        report.write(a.out)


if __name__ == '__main__':
    main()
