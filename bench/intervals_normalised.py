"""An exploratory check: would normalised (locally weighted) split conformal bands cover closer to nominal on ETT's
test part than the plain per-step bands, and from how many input rows should the scale be read? (tsforge now serves
the whole-input-window variant as `intervals.scale: input`; bench/intervals.py scores it beside the others.)

    OMP_NUM_THREADS=1 python bench/intervals_normalised.py                 # linear, ETTh1/ETTh2 S, 96/192/336/720
    OMP_NUM_THREADS=1 python bench/intervals_normalised.py --model lightgbm --out bench/results/normalised.md

The plain bands (`tsforge.intervals.calibrate`, method `conformal`) use the absolute errors of the calibration windows
(the last third of validation, as in bench/intervals.py). The normalised variant is the library's (`calibrate(...,
scale=...)` and `Calibration.bands(..., scale)`, floor included) with the scale read from the last `k` input rows
instead of all of them: each calibration window's errors divided by the standard deviation of the scaled target over
its last `k` input rows, the same finite-sample rank of those ratios per step, multiplied back by each test window's
own scale (Papadopoulos et al. 2008; Lei et al. 2018): bands widen in volatile stretches and narrow in calm ones.
ETT's validation months are more volatile than its test months, which is why the plain bands over-cover; a scale read
from the input can follow that. Coverage over every stride-1 test window, per level; `k` values compared side by side.
Which `k` (if any) a served method would use must be chosen without the test part (e.g. on the cv folds): this table
reads the test part for every `k` and so only says whether the idea is worth building.
"""

import argparse

import numpy as np

from intervals import fit_and_calibration_windows  # bench/intervals.py: the same fit and calibration windows
from report import Report  # bench/report.py: the command line and the table

HORIZONS = [96, 192, 336, 720]
LEVELS = [80, 95]


def tail_scale(w, k: int) -> np.ndarray:
    """Standard deviation of each forecast column over each window's last `k` input rows: (n, C). With `k` = the
    input length it is `tsforge.intervals.input_scale`, what `intervals.scale: input` serves."""
    return w.inputs(w.state.out_idx).all()[:, -k:].std(axis=1)


def coverage(lo, hi, y) -> float:
    return float(((y >= lo) & (y <= hi)).mean())


def run_cell(ds: str, H: int, model: str, ks: list[int]) -> dict:
    from tsforge.intervals import calibrate

    _, prep, ev, cw, cp = fit_and_calibration_windows(ds, H, model)
    test = prep.windows('test')
    y = test.Y
    cover = lambda b: {lv: coverage(b[0][:, :, j], b[1][:, :, j], y) for j, lv in enumerate(LEVELS)}
    out = {'n': len(cw), 'plain': cover(ev.test_bands)}
    for k in ks:  # the library's normalised calibration and bands, with the scale read from the last k rows
        cal = calibrate(cp, cw.Y, LEVELS, 'conformal', scale=tail_scale(cw, k))
        out[k] = cover(cal.bands(ev.test_pred, None, tail_scale(test, k)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='linear')
    ap.add_argument('--datasets', nargs='+', default=['etth1', 'etth2'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--k', nargs='+', type=int, default=[24, 96, 336], help='input rows the scale is read from')
    ap.add_argument('--out', default=None, help='also write the table to this markdown file')
    a = ap.parse_args()
    rep = Report('bench/intervals_normalised.py')
    cols = ['plain'] + [f'normalised k={k}' for k in a.k]
    rep.emit(f'Coverage over every test window ({a.model}, S), at 80 / 95; within 3 points of nominal in bold.')
    rep.emit()
    rep.emit('| dataset | H | calibration windows | ' + ' | '.join(cols) + ' |')
    rep.emit('|---|---|---|' + '---|' * len(cols))
    hits = {c: 0 for c in cols}
    for ds in a.datasets:
        for H in a.horizons:
            r = run_cell(ds, H, a.model, a.k)
            cells = []
            for c, key in zip(cols, ['plain', *a.k]):
                ok = [abs(r[key][lv] - lv / 100) <= 0.03 for lv in LEVELS]
                hits[c] += all(ok)
                cells.append(
                    ' / '.join(f'**{r[key][lv]:.3f}**' if o else f'{r[key][lv]:.3f}' for lv, o in zip(LEVELS, ok))
                )
            rep.emit(f'| {ds} | {H} | {r["n"]} | ' + ' | '.join(cells) + ' |')
    rep.emit()
    cells = len(a.datasets) * len(a.horizons)
    rep.emit('Cells within 3 points at both levels: ' + ', '.join(f'{c} {hits[c]} of {cells}' for c in cols) + '.')
    if a.out:
        rep.write(a.out)


if __name__ == '__main__':
    main()
