"""ETTh1/ETTh2: the committed per-cell configurations on the months after the test part, which no run had read.

    OMP_NUM_THREADS=1 python bench/ett_later.py                  # M and S, 16 cells, 4 configurations each
    OMP_NUM_THREADS=1 python bench/ett_later.py --modes S --horizons 96

The standard protocol (DESIGN.md) uses the first 14,400 rows of each file: train [0, 8640), validation [8640, 11520),
test [11520, 14400). The files go on to row 17,420: about four more months ("later" below: every stride-1 window whose
targets lie in [14400, end), 2925/2829/2685/2301 windows for H=96/192/336/720), which no protocol of this project had
scored. Each configuration is fitted exactly as the protocol fits it (train part, validation part for early stopping,
scaler on the train rows) and then scored twice: on the standard test part and on the later months, MSE and MAE on
scaled values. No published figure exists for the later months: they only compare configurations with each other.

Why: the standard test months of the M cells have been read by seven protocols of this project (three for S), each
with its rule fixed before the read and its choices made on the folds, but a choice of what to try next is still made
after seeing test figures. The later months say whether the committed configurations' standing against simple
references holds on data that shaped nothing.

Per cell, four configurations, fixed before the later months were read (commit that adds this script):

- `committed`: the cell's experiment file, `experiments/<dataset>_<mode><H>_ensemble.yaml` (the equal-weight ensemble
  of the tune job's three best trials on the folds);
- `best trial`: that file's first member alone (the search's best trial: its model, parameters and input length);
- `linear`: the tune experiments' own configuration (ridge NLinear, L=336, its defaults): the search's first trial
  and, in S mode, the model of the best published S figures (NLinear);
- `fits`: FITS at L=720 with its defaults (the paper's setting: the 24-hour period and 6 harmonics), the method of
  four of the eight best honest M figures.

What the table is for, fixed before: the committed configuration's MSE as a ratio to each reference, on the test
months and on the later months, per cell and as a geometric mean over the cells of a mode. If the ratio on the later
months is close to the test months' ratio, the test-month standing holds; if it is clearly worse, the standing was
partly the test months' (selection after repeated reads, or months that suit the configuration). Nothing else follows
from it: no experiment file is changed on these figures, and the later months are not used to choose anything.

`--variants committed 'with segrnn'` (added later, before any SegRNN fit): `with segrnn` is the file
`<dataset>_<mode><H>_segrnn.yaml` that `bench/ett_fold_members.py --apply` writes where SegRNN as a fourth member
lowered the fold MSE by at least 0.5% (cells without it are skipped). Its one read of the test months and of the later
months; the ratio table then compares the committed file with it.

`--variants current 'with cyclenet'` (added with CycleNet, before its first fit): `current` is the cell's
configuration now (the `_segrnn` file where there is one, else the committed file: both already read, so their
figures are known), `with cyclenet` the file `<dataset>_<mode><H>_cyclenet.yaml` that `bench/ett_fold_members.py
--extra cyclenet --base current --apply` writes where CycleNet as one more member lowered the fold MSE by at least
0.5% (cells without it are skipped). The ratio table compares the first variant given with the others.
(`current` is now the latest rule's file for the cell: `bench/ett_m.py`'s `cell_file`.)

`--variants 'before year' year` (added with the year folds, before their first fit): `before year` is the cell's
configuration before the year-fold rule (the `_cyclenet` or `_segrnn` file where there is one, else the committed
file), `year` the file `<dataset>_<mode><H>_year.yaml` that `bench/ett_tune_cells.py --folds year
--write-experiments` writes (see the rule there). `--variants 'before blocked' blocked`: the same for the blocked
folds (`--folds blocked`). `--variants 'before rlinear' 'with rlinear'`: the same for the file
`<dataset>_<mode><H>_rlinear.yaml` of `bench/ett_fold_members.py --extra rlinear ... --apply` (see the rule there),
and `--variants 'before cross' 'with cross'` for `<dataset>_<mode><H>_cross.yaml` (`--extra 'linear:cross=24' ...
--suffix cross`); `'before fits' 'with fits'` for `<dataset>_<mode><H>_fits.yaml` (`--extra fits ... --folds blocked
--suffix fits`); `'before crossbase' 'with crossbase'` for `<dataset>_<mode><H>_crossbase.yaml` (`--set-members
... --suffix crossbase`); `'before trees' 'with trees'` for `<dataset>_<mode><H>_trees.yaml` (`--extra
'lightgbm:per_channel=true' ... --suffix trees`); `'before segrnn_blocked' 'with segrnn_blocked'` for
`<dataset>_<mode><H>_segrnn_blocked.yaml` (`--modes S --extra 'segrnn:...' ... --suffix segrnn_blocked`), and
`'before segrnn336' 'with segrnn336'` for the same at L=336 (`--suffix segrnn336`).
"""

import argparse, resource, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from ett_m import RULES, cell_file
from report import Report  # bench/report.py: the command line and the table

ROOT = Path(__file__).resolve().parent.parent

HORIZONS = [96, 192, 336, 720]
RULE_FILES = {
    r if r in ('year', 'blocked') else f'with {r}': r for r in RULES
}  # variant -> the suffix of the files a later rule wrote (`RULES`, oldest first)
VARIANTS = ['committed', 'best trial', 'linear', 'fits', 'current'] + [
    v for (with_, r) in RULE_FILES.items() for v in (f'before {r}', with_)
]
DEFAULT = VARIANTS[:4]  # the fixed comparison of the first run


def variant_config(name: str, variant: str):
    "The configuration `variant` of experiment file `name` (protocol point forecast: no intervals)."
    from tsforge.config import load_config
    from tsforge.tune import trial_config

    if variant in RULE_FILES:  # written where the folds favoured the extra member (cells without it are skipped)
        return load_config(name.replace('_ensemble', f'_{RULE_FILES[variant]}'), ['intervals.levels=[]'])
    cfg = load_config(name, ['intervals.levels=[]'])
    if variant == 'best trial':  # the search's best trial: the first member (members are listed best first)
        m = cfg.model_params['members'][0]
        return trial_config(cfg, {k: m[k] for k in ('model', 'input_length', 'model_params')})
    if variant == 'linear':
        return trial_config(cfg, {'model': 'linear', 'input_length': 336, 'model_params': {}})
    if variant == 'fits':
        return trial_config(cfg, {'model': 'fits', 'input_length': 720, 'model_params': {'progress': False}})
    return cfg


def run_cell(name: str, variant: str) -> dict:
    "Fit `variant` of `name` as the protocol does; score the test part and the later months. In its own process."
    t0 = time.perf_counter()
    from tsforge.preprocess import make_windows
    from tsforge.prepare import prepare
    from tsforge.split import origins
    from tsforge.train import evaluate, fit_evaluate

    cfg = variant_config(name, variant)
    prep = prepare(cfg)
    st, b = prep.state, prep.borders
    ev = fit_evaluate(cfg, prep, keep_predictions=False)  # the protocol's own fit and test scores
    o = origins(b.test_end, len(prep.frame), st.input_length, st.horizon)
    lm, _ = evaluate(ev.model, make_windows(st, prep.scaled, prep.times, o, cov=prep.cov), 'later_')
    tm, fit_s = ev.metrics, ev.metrics['fit_seconds']
    return {
        **{k: float(v) for k, v in {**tm, **lm}.items() if k.endswith(('_mse', '_mae'))},
        'test_windows': int(tm['test_windows']),
        'later_windows': int(lm['later_windows']),
        'rows': (b.test_end, len(prep.frame)),
        'L': cfg.input_length,
        'model': cfg.model,
        'fit_s': fit_s,
        'seconds': time.perf_counter() - t0,
        'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def gmean(x) -> float:
    return float(np.exp(np.mean(np.log(x))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--modes', nargs='+', default=['M', 'S'])
    ap.add_argument('--datasets', nargs='+', default=['etth2', 'etth1'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--variants', nargs='+', default=DEFAULT, choices=VARIANTS)
    ap.add_argument('--out', default='bench/results/ett_later.md')
    a = ap.parse_args()
    report = Report('bench/ett_later.py')
    emit = report.emit
    emit(
        '| dataset | mode | H | configuration | model | L | test MSE | later MSE | test MAE | later MAE | '
        'later windows (rows) | fit s | s | peak MB |'
    )
    emit('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    ctx, res = get_context('spawn'), {}
    for mode in a.modes:
        for ds in a.datasets:
            for h in a.horizons:
                name = f'{ds}_{mode.lower()}{h}_ensemble'
                for v in a.variants:
                    file = RULE_FILES.get(v)
                    if file and not (ROOT / 'experiments' / f'{ds}_{mode.lower()}{h}_{file}.yaml').exists():
                        continue  # the folds did not favour it in this cell: no file, nothing to score
                    # `current`: the latest rule's file for the cell, else the committed file (as it is)
                    n = name
                    if v == 'current' or v.startswith('before '):
                        before = v.split(' ', 1)[1] if v.startswith('before ') else None
                        n = cell_file(ds, mode, h, 'current', before=before).stem
                    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
                        try:
                            r = ex.submit(run_cell, n, v).result()
                        except Exception as e:
                            emit(f'| {ds} | {mode} | {h} | {v} | failed: {type(e).__name__}: {str(e)[:80]} |||||||||')
                            continue
                    res[(mode, ds, h, v)] = r
                    emit(
                        f'| {ds.replace("etth", "ETTh")} | {mode} | {h} | {v} | {r["model"]} | {r["L"]} | '
                        f'{r["test_mse"]:.4f} | {r["later_mse"]:.4f} | {r["test_mae"]:.4f} | {r["later_mae"]:.4f} | '
                        f'{r["later_windows"]} ({r["rows"][0]}-{r["rows"][1]}) | {r["fit_s"]:.0f} | '
                        f'{r["seconds"]:.0f} | {r["peak_mb"]:.0f} |'
                    )
    first = a.variants[0]  # the configuration compared with the others
    refs = a.variants[1:]
    if not refs:
        report.write(a.out)
        return
    emit()
    emit(f"The {first} configuration's MSE over each reference's (below 1: the {first} one is better), on the")
    emit('test months and on the later months:')
    emit()
    emit('| dataset | mode | H | ' + ' | '.join(f'vs {v}: test | vs {v}: later' for v in refs) + ' |')
    emit('|---|---|---|' + '---|---|' * len(refs))
    ratios = {}
    for (mode, ds, h, v), r in res.items():
        c = res.get((mode, ds, h, first))
        if v == first or c is None:
            continue
        ratios[(mode, ds, h, v)] = (c['test_mse'] / r['test_mse'], c['later_mse'] / r['later_mse'])
    for mode in a.modes:
        for ds in a.datasets:
            for h in a.horizons:
                cells = [ratios.get((mode, ds, h, v)) for v in refs]
                if not any(cells):
                    continue
                txt = ' | '.join(f'{t:.3f} | {lt:.3f}' if x else '– | –' for x in cells for t, lt in [x or (0, 0)])
                emit(f'| {ds.replace("etth", "ETTh")} | {mode} | {h} | {txt} |')
        per = {v: [ratios[k] for k in ratios if k[0] == mode and k[3] == v] for v in refs}
        if any(per.values()):
            txt = ' | '.join(
                f'**{gmean([t for t, _ in x]):.3f}** | **{gmean([lt for _, lt in x]):.3f}**' if x else '– | –'
                for x in per.values()
            )
            emit(f'| geometric mean | {mode} | | {txt} |')
    report.write(a.out)


if __name__ == '__main__':
    main()
