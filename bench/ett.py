"""The ETT benchmark: every model on the honest protocol, beside the published figures.

    python bench/ett.py                                   # all models, ETTh1+ETTh2, S and M, 96/192/336/720
    python bench/ett.py --models naive linear --modes S   # the issue-2 table
    python bench/ett.py --models dlinear --set +model_params.epochs=5

Protocol (DESIGN.md): first 14,400 rows, train [0, 8640), validation [8640, 11520), test [11520, 14400); scaler
fitted on the train rows; every stride-1 test window (2785/2689/2545/2161); MSE and MAE on scaled values.
Each cell runs in a fresh process, so `peak MB` is that cell's own peak resident memory and `s` its wall time
(load + fit + predict). Prints markdown tables (and writes them to --out), headed by the command that made them.
"""

import argparse, os, resource, shlex, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

PUBLISHED = {  # MSE, from DESIGN.md
    ('ETTh1', 'S'): {'NLinear': [0.053, 0.069, 0.081, 0.080], 'PatchTST/42': [0.055, 0.071, 0.081, 0.087]},
    ('ETTh2', 'S'): {'NLinear': [0.129, 0.169, 0.194, 0.225]},
    ('ETTh1', 'M'): {'PatchTST/64': [0.370, 0.413, 0.422, 0.447]},
    ('ETTh2', 'M'): {'PatchTST/64': [0.274, 0.341, 0.329, 0.379]},
}
HORIZONS = [96, 192, 336, 720]
MODELS = ['naive', 'seasonal_naive', 'linear', 'lightgbm', 'dlinear', 'patchtst', 'ensemble']


def run_cell(config, mode, horizon, model, overrides):
    "One benchmark cell, in its own process: returns metrics, seconds and this process's peak RSS."
    t0 = time.perf_counter()
    from tsforge.config import load_config
    from tsforge.pipeline import fit_evaluate

    cfg = load_config(config, [f'mode={mode}', f'model={model}', f'horizon={horizon}', *overrides])
    m = fit_evaluate(cfg).metrics
    return {
        'mse': m['test_mse'],
        'mae': m['test_mae'],
        'windows': m['test_windows'],
        'seconds': time.perf_counter() - t0,
        'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def best_published(ds, mode, h):
    figs = PUBLISHED.get((ds, mode), {})
    if not figs:
        return None, None
    name = min(figs, key=lambda k: figs[k][HORIZONS.index(h)])
    return name, figs[name][HORIZONS.index(h)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--datasets', nargs='+', default=['etth1', 'etth2'])
    ap.add_argument('--modes', nargs='+', default=['S', 'M'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--models', nargs='+', default=MODELS)
    ap.add_argument('--set', nargs='*', default=[], metavar='OVERRIDE', help='Hydra overrides applied to every cell')
    ap.add_argument('--out', default='bench/results/ett.md')
    a = ap.parse_args()
    cmd = 'python bench/ett.py ' + shlex.join(sys.argv[1:])
    env = ' '.join(f'{k}={os.environ[k]}' for k in ('OMP_NUM_THREADS',) if k in os.environ)
    rows, lines = [], []

    def emit(s=''):
        print(s, flush=True)
        lines.append(s)

    emit(f'`{(env + " " if env else "") + cmd}`  ({os.cpu_count()} CPUs)')
    emit()
    emit('| dataset | mode | H | model | MSE | MAE | windows | best published MSE | vs published | s | peak MB |')
    emit('|---|---|---|---|---|---|---|---|---|---|---|')
    ctx = get_context('spawn')
    for ds in a.datasets:
        for mode in a.modes:
            for h in a.horizons:
                for model in a.models:
                    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
                        try:
                            r = ex.submit(run_cell, ds, mode, h, model, a.set).result()
                        except Exception as e:
                            emit(f'| {ds} | {mode} | {h} | {model} | failed: {type(e).__name__}: {str(e)[:80]} |||||||')
                            continue
                    DS = ds.replace('etth', 'ETTh')
                    pname, pval = best_published(DS, mode, h)
                    vs = f'{(r["mse"] / pval - 1) * 100:+.1f}%' if pval else ''
                    pub = f'{pval:.3f} ({pname})' if pval else ''
                    rows.append((DS, mode, h, model, r))
                    emit(
                        f'| {DS} | {mode} | {h} | {model} | {r["mse"]:.4f} | {r["mae"]:.4f} | {r["windows"]} | '
                        f'{pub} | {vs} | {r["seconds"]:.1f} | {r["peak_mb"]:.0f} |'
                    )
    emit()
    emit('Best tsforge model per cell against the best published figure:')
    emit()
    emit('| dataset | mode | H | best tsforge | MSE | best published | vs published |')
    emit('|---|---|---|---|---|---|---|')
    cells = {}
    for DS, mode, h, model, r in rows:
        if (DS, mode, h) not in cells or r['mse'] < cells[(DS, mode, h)][1]['mse']:
            cells[(DS, mode, h)] = (model, r)
    for (DS, mode, h), (model, r) in cells.items():
        pname, pval = best_published(DS, mode, h)
        vs = f'{(r["mse"] / pval - 1) * 100:+.1f}%' if pval else ''
        emit(f'| {DS} | {mode} | {h} | {model} | {r["mse"]:.4f} | {f"{pval:.3f} ({pname})" if pval else ""} | {vs} |')
    emit()
    emit('Total seconds per model (all cells above):')
    emit()
    for model in a.models:
        tot = sum(r['seconds'] for *_, m, r in rows if m == model)
        emit(f'- {model}: {tot:.0f} s')
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
