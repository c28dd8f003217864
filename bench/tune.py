"""Tune benchmark: for ETTh1 / ETTh2 S at each horizon, tune lightgbm (input length + main booster parameters) and
linear (input length) with the tune job's search (`tsforge.tune.tune`, folds before the test part, fixed budget),
then fit the best configuration on the standard split and score it once on the test part, beside the default
configuration's test score. Also measures, on one cell at equal budget, the search time with and without the
pruner, and `local` with 2 workers against `serial`.

The search uses fewer lightgbm rows and rounds than the defaults (`--search-rows`, `--search-rounds`, one thread per
trial); the best parameters are then fitted with the default rows, rounds and threads. Each run uses a throw-away
store (TSFORGE_HOME in a temporary folder). Run it alone on the machine (one benchmark at a time):

    OMP_NUM_THREADS=1 python bench/tune.py

The tables it made are in bench/tables/tune.md.
"""

import argparse, os, sys, tempfile, time
from pathlib import Path

PUBLISHED = {
    ('ETTh1', 96): 0.053,
    ('ETTh1', 192): 0.069,
    ('ETTh1', 336): 0.081,
    ('ETTh1', 720): 0.080,
    ('ETTh2', 96): 0.129,
    ('ETTh2', 192): 0.169,
    ('ETTh2', 336): 0.194,
    ('ETTh2', 720): 0.225,
}
FULL = {
    'max_rows': 300_000,
    'n_estimators': 1000,
    'num_threads': 2,
    'folds': 5,
}  # lightgbm defaults, restored for the final fit
# lightgbm with its defaults (L=336), S mode: bench/tables/ett.md (bench/ett.py, same code, deterministic with seed 0);
# --recompute-defaults fits them again instead
TABLE_LIGHTGBM = {
    ('ETTh1', 96): 0.0522,
    ('ETTh1', 192): 0.0677,
    ('ETTh1', 336): 0.0795,
    ('ETTh1', 720): 0.0786,
    ('ETTh2', 96): 0.1282,
    ('ETTh2', 192): 0.1634,
    ('ETTh2', 336): 0.1858,
    ('ETTh2', 720): 0.2067,
}


def search_overrides(args, ds, H, model, trials, executor='serial', pruner='median', tag=''):
    o = [
        f'horizon={H}',
        f'cv.n_windows={args.folds}',
        'cv.horizon=1440',
        'cv.step=720',
        f'tune.n_trials={trials}',
        f'tune.executor={executor}',
        'tune.n_workers=2',
        f'tune.pruner={pruner}',
        'tune.retrain=false',
        'intervals.levels=[]',  # the protocol's point forecasts, as the published figures
        f'tune.n_startup_trials={args.startup}',
        *(['tune.pruner_startup_trials=3'] if pruner == 'median' else []),  # only the median pruner reads it
        f'tune.study_name=bench{tag}-{ds}-{model}-h{H}',
    ]
    if model == 'lightgbm':
        o += [
            f'+model_params.max_rows={args.search_rows}',
            f'+model_params.n_estimators={args.search_rounds}',
            '+model_params.num_threads=1',
            '+model_params.folds=2',
        ]
    else:
        o += ['model=linear', '+tune.space.input_length={low: 96, high: 720, step: 48}']
    return o


def final_fit(cfg, params, model):
    """Fit `cfg` with `params` applied on the standard split (lightgbm with its default rows / rounds / threads);
    test metrics."""
    from tsforge.train import fit_evaluate
    from tsforge.tune import trial_config

    best = trial_config(cfg, params)
    if model == 'lightgbm':
        best = trial_config(best, {f'model_params.{k}': v for k, v in FULL.items()})
    t0 = time.perf_counter()
    m = fit_evaluate(best).metrics
    return m['test_mse'], m['test_mae'], time.perf_counter() - t0


def run_cell(args, ds, H, model, trials, executor='serial', pruner='median', tag='', final=True):
    from tsforge.config import load_config
    from tsforge.tune import tune

    config = (
        f'{ds.lower()}_tune' if model == 'lightgbm' else ds.lower()
    )  # linear: the plain experiment + its input length
    cfg = load_config(config, search_overrides(args, ds, H, model, trials, executor, pruner, tag))
    t0 = time.perf_counter()
    res = tune(cfg, progress=False, retrain=False)
    search_s = time.perf_counter() - t0
    c = res.counts()
    row = {
        'dataset': ds,
        'H': H,
        'model': model,
        'executor': executor,
        'pruner': pruner,
        'trials': trials,
        'complete': c['COMPLETE'],
        'pruned': c['PRUNED'],
        'failed': c['FAIL'],
        'best_cv': res.best_value,
        'default_cv': res.default_value,
        'search_s': search_s,
        'params': res.best_params,
    }
    if final:
        row['tuned_mse'], row['tuned_mae'], row['final_s'] = final_fit(cfg, res.best_params, model)
    return row


def default_test(ds, H, model, recompute=False):
    if model == 'lightgbm' and not recompute and (ds, H) in TABLE_LIGHTGBM:
        return TABLE_LIGHTGBM[(ds, H)], 0.0
    from tsforge.config import load_config
    from tsforge.train import fit_evaluate

    t0 = time.perf_counter()
    m = fit_evaluate(load_config(ds.lower(), [f'horizon={H}', f'model={model}', 'intervals.levels=[]'])).metrics
    return m['test_mse'], time.perf_counter() - t0


def short(params):
    keys = {
        'input_length': 'L',
        'model_params.num_leaves': 'leaves',
        'model_params.learning_rate': 'lr',
        'model_params.min_data_in_leaf': 'min_leaf',
        'model_params.feature_fraction': 'ff',
        'model_params.lambda_l2': 'l2',
    }
    return ', '.join(
        f'{keys.get(k, k)}={v:.3g}' if isinstance(v, float) else f'{keys.get(k, k)}={v}' for k, v in params.items()
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--datasets', nargs='+', default=['ETTh1', 'ETTh2'])
    ap.add_argument('--horizons', nargs='+', type=int, default=[96, 192, 336, 720])
    ap.add_argument('--trials', type=int, default=8, help='lightgbm trials per cell')
    ap.add_argument('--linear-trials', type=int, default=6)
    ap.add_argument('--folds', type=int, default=2)
    ap.add_argument('--startup', type=int, default=3, help='random trials before TPE')
    ap.add_argument('--search-rows', type=int, default=20_000)
    ap.add_argument('--search-rounds', type=int, default=150)
    ap.add_argument(
        '--recompute-defaults', action='store_true', help="fit lightgbm's default config instead of bench/tables/ett.md"
    )
    ap.add_argument(
        '--compare-cell', default='ETTh1:96', help='dataset:H for the pruner and executor comparisons ("" to skip)'
    )
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'tune.md'))
    args = ap.parse_args()
    os.environ['TSFORGE_HOME'] = tempfile.mkdtemp(prefix='tsforge-bench-tune-')
    os.environ.pop('TSFORGE_OPTUNA_STORAGE', None)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cmd = 'OMP_NUM_THREADS=1 python bench/tune.py ' + ' '.join(sys.argv[1:])
    t_all = time.perf_counter()
    rows = []
    for ds in args.datasets:
        for H in args.horizons:
            for model, n in (('linear', args.linear_trials), ('lightgbm', args.trials)):
                d_mse, d_s = default_test(ds, H, model, args.recompute_defaults)
                r = run_cell(args, ds, H, model, n)
                r.update(default_mse=d_mse, default_s=d_s)
                rows.append(r)
                print(
                    f'{ds} H={H} {model}: default {d_mse:.4f} tuned {r["tuned_mse"]:.4f} cv {r["best_cv"]:.4f} '
                    f'({r["complete"]}/{r["pruned"]}/{r["failed"]}) {r["search_s"]:.0f}s {short(r["params"])}',
                    flush=True,
                )
    comp = []
    if args.compare_cell:
        ds, H = args.compare_cell.split(':')
        H = int(H)
        for executor, pruner in (('serial', 'median'), ('serial', 'none'), ('local', 'median')):
            r = run_cell(
                args, ds, H, 'lightgbm', args.trials, executor, pruner, tag=f'-{executor}-{pruner}', final=False
            )
            comp.append(r)
            print(
                f'compare {ds} H={H} {executor} {pruner}: {r["search_s"]:.0f}s ({r["complete"]}/{r["pruned"]}) '
                f'cv {r["best_cv"]:.4f}',
                flush=True,
            )
    total = time.perf_counter() - t_all
    lines = [
        f'`{cmd}` (total {total / 60:.1f} min)',
        '',
        '| dataset | H | model | default test MSE | tuned test MSE | tuned vs default | best cv MSE (default cv) | '
        'trials complete / pruned / failed | search s | published best | tuned vs published | best params |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        pub = PUBLISHED.get((r['dataset'], r['H']))
        dcv = f' ({r["default_cv"]:.4f})' if r['default_cv'] is not None else ''
        lines.append(
            f'| {r["dataset"]} | {r["H"]} | {r["model"]} | {r["default_mse"]:.4f} | {r["tuned_mse"]:.4f} | '
            f'{100 * (r["tuned_mse"] / r["default_mse"] - 1):+.1f}% | {r["best_cv"]:.4f}{dcv} | '
            f'{r["complete"]} / {r["pruned"]} / {r["failed"]} | {r["search_s"]:.0f} | {pub} | '
            f'{100 * (r["tuned_mse"] / pub - 1):+.1f}% | {short(r["params"])} |'
        )
    gbm = [r for r in rows if r['model'] == 'lightgbm']
    best_cell = {}
    for r in rows:
        k = (r['dataset'], r['H'])
        best_cell[k] = min(best_cell.get(k, 9e9), r['tuned_mse'])
    lines += [
        '',
        f'lightgbm tuned <= default on test: '
        f'{sum(r["tuned_mse"] <= r["default_mse"] for r in gbm)} of {len(gbm)} cells; '
        f'best tuned model >= 5% under the published best: '
        f'{sum(v <= 0.95 * PUBLISHED[k] for k, v in best_cell.items() if k in PUBLISHED)} of {len(best_cell)} cells',
    ]
    if comp:
        base = comp[0]['search_s']
        lines += [
            '',
            f'Search time at equal budget ({args.trials} trials, {comp[0]["dataset"]} H={comp[0]["H"]}, lightgbm):',
            '',
            '| executor | pruner | seconds | trials complete / pruned | best cv MSE | vs serial + median |',
            '|---|---|---|---|---|---|',
        ]
        for r in comp:
            lines.append(
                f'| {r["executor"]}{" x2" if r["executor"] == "local" else ""} | {r["pruner"]} | {r["search_s"]:.0f} | '
                f'{r["complete"]} / {r["pruned"]} | {r["best_cv"]:.4f} | {base / r["search_s"]:.2f}x faster |'
            )
    text = '\n'.join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
