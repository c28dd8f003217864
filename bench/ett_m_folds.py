"""M-mode selection on several cut-offs instead of one validation part: the tune job's folds, before the test part.

    OMP_NUM_THREADS=1 python bench/ett_m_folds.py                  # ETTh1/ETTh2 M, 96-720, linear/lightgbm, L 336/720
    OMP_NUM_THREADS=1 python bench/ett_m_folds.py --datasets etth2 --horizons 96 --candidates linear lightgbm

For every cell and (candidate, L), the mean scaled MSE over the backtest folds the tune job searches on
(`tsforge.tune.search_data`: the rows before the test part only; `cv.n_windows` folds of `cv.horizon` rows, `cv.step`
apart, the last ending where the test part starts; a refit per fold on the rows before it, its last share as
validation), beside the single validation part's MSE that `bench/ett_m.py` selects on. The test part is not read:
the table says which configuration fold-based selection would choose, not how it would score.
"""

import argparse, sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ett_m import parse_candidate  # bench/ett_m.py: `model:key=value` candidates
from report import Report  # bench/report.py: the command line and the table

HORIZONS = [96, 192, 336, 720]


def fold_mse(dataset: str, horizon: int, L: int, spec: str, folds: int, block: int, step: int) -> tuple[float, float]:
    "Mean scaled MSE over the search folds, and the seconds it took."
    from tsforge.config import load_config
    from tsforge.cv import cv_folds, refit_groups, run_group
    from tsforge.prepare import mode_columns
    from tsforge.tune import search_data, trial_config

    model, params = parse_candidate(spec)
    cfg = load_config(
        dataset,
        [
            'mode=M',
            f'horizon={horizon}',
            f'input_length={L}',
            'intervals.levels=[]',
            f'cv.n_windows={folds}',
            f'cv.horizon={block}',
            f'cv.step={step}',
        ],
    )
    cfg = trial_config(cfg, {'model': model, **{f'model_params.{k}': v for k, v in params.items()}})
    data = search_data(cfg)
    cols_in, cols_out = mode_columns(cfg, data.columns)
    t0, mses = time.perf_counter(), []
    for g in refit_groups(cv_folds(cfg, data.n_rows), cfg.cv.refit_every):
        for r in run_group(cfg, data.frame, cols_in, cols_out, data.freq, g):
            mses.append(float(r.metrics['mse']))
    return float(np.mean(mses)), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--datasets', nargs='+', default=['etth2', 'etth1'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--lengths', nargs='+', type=int, default=[336, 720])
    ap.add_argument('--candidates', nargs='+', default=['linear', 'lightgbm'])
    ap.add_argument('--folds', type=int, default=4, help='cv.n_windows')
    ap.add_argument('--block', type=int, default=1440, help='cv.horizon: rows scored per fold')
    ap.add_argument('--step', type=int, default=720, help='cv.step: rows between fold starts')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    rep = Report('bench/ett_m_folds.py')
    cols = [f'{c} L={L}' for c in a.candidates for L in a.lengths]
    rep.emit('Mean scaled MSE over the folds before the test part (the lowest of each row in bold).')
    rep.emit()
    rep.emit('| dataset | H | ' + ' | '.join(cols) + ' | chosen on the folds |')
    rep.emit('|---|---|' + '---|' * (len(cols) + 1))
    for ds in a.datasets:
        for H in a.horizons:
            res = {}
            for c in a.candidates:
                for L in a.lengths:
                    res[f'{c} L={L}'] = fold_mse(ds, H, L, c, a.folds, a.block, a.step)
                    print(ds, H, c, L, res[f'{c} L={L}'], file=sys.stderr, flush=True)
            best = min(res, key=lambda k: res[k][0])
            cells = [f'**{res[k][0]:.4f}**' if k == best else f'{res[k][0]:.4f}' for k in cols]
            rep.emit(f'| {ds.upper().replace("ETTH", "ETTh")} | {H} | ' + ' | '.join(cells) + f' | {best} |')
    rep.emit()
    rep.emit(f'Folds: {a.folds} blocks of {a.block} rows, {a.step} apart, the last ending where the test part starts.')
    if a.out:
        rep.write(a.out)


if __name__ == '__main__':
    main()
