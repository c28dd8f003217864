"""ETTh1/ETTh2 in M mode (all 7 columns in and out): per cell, choose the model and input length on the validation
part, then score the test part once, for the chosen configuration only.

    OMP_NUM_THREADS=1 python bench/ett_m.py --datasets etth1 etth2 --lengths 720 --write-experiments

For every (dataset, H) cell, in a fresh process: for each input length L, every candidate model is fitted on the
train part (early stopping, where a model has it, on the validation part) and scored on the validation part;
`ensemble` is the tsforge `ensemble` of the other candidates (weights 1 / validation MSE, built from the members
fitted here: the same seeds give the same members as a fresh `ensemble` fit). The candidate with the lowest
validation MSE is the cell's configuration; only that one is scored on the test part (every stride-1 window).
With `--write-experiments` it is written as `experiments/<dataset>_m<H>_<model>.yaml`, reproducible with
`papermill nbs/train.ipynb out.ipynb -p config <dataset>_m<H>_<model>`. Prints a markdown table (and writes it to
--out) headed by the command that made it, beside the best figures that score every test window (issue 15).
"""

import argparse, json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ett import HONEST, HORIZONS  # noqa: E402
from report import command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BEFORE = {  # tsforge's best M figure before issue 15 (its table in the issue)
    ('ETTh1', 96): (0.3666, 'lightgbm'), ('ETTh1', 192): (0.4028, 'linear'), ('ETTh1', 336): (0.4259, 'lightgbm'),
    ('ETTh1', 720): (0.4327, 'linear'), ('ETTh2', 96): (0.2717, 'linear'), ('ETTh2', 192): (0.3336, 'linear'),
    ('ETTh2', 336): (0.3581, 'linear'), ('ETTh2', 720): (0.3924, 'linear'),
}  # fmt: skip


def quiet(model: str) -> dict:
    "`{'progress': False}` for a model with a progress bar (the torch models), else nothing: tables stay readable."
    from tsforge.models import model_class

    return {'progress': False} if 'progress' in model_class(model).Params.model_fields else {}


RULES = [
    'segrnn',
    'cyclenet',
    'year',
    'blocked',
    'rlinear',
    'cross',
    'fits',
    'crossbase',
    'trees',
    'segrnn_blocked',
    'segrnn336',
    'fits720',
]  # the suffixes of the files later rules wrote, oldest first


def cell_file(dataset: str, mode: str, horizon: int, base: str = 'ensemble', before: str | None = None) -> Path:
    """A cell's experiment file: `ensemble` (the tune job's three best trials, averaged) or `current` (the file the
    latest rule wrote for the cell, `RULES`: SegRNN's or CycleNet's extra member of `bench/ett_fold_members.py`, the
    year folds of `bench/ett_tune_cells.py --folds year`; else the ensemble). `before`: the current file as it was
    before that rule's files were written."""
    stem = ROOT / 'experiments' / f'{dataset}_{mode.lower()}{horizon}'
    rules = RULES[: RULES.index(before)] if before else RULES
    if base == 'current':
        for rule in reversed(rules):
            if Path(f'{stem}_{rule}.yaml').exists():
                return Path(f'{stem}_{rule}.yaml')
    return Path(f'{stem}_ensemble.yaml')


def parse_candidate(spec: str) -> tuple[str, dict]:
    "`model` or `model:key=value,key=value` (values read as JSON where they parse, else strings)."
    name, _, rest = spec.partition(':')
    params = {}
    for kv in filter(None, rest.split(',')):
        k, _, v = kv.partition('=')
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return name, params


def run_cell(dataset, horizon, lengths, candidates, seed=0, test=True):
    """Validation scores of every (L, candidate), then the test scores of the best one only. `ensemble` combines the
    candidates given by a bare model name."""
    from tsforge.config import load_config
    from tsforge.models import Ensemble, make_model
    from tsforge.prepare import prepare
    from tsforge.train import evaluate

    tried, best = [], None
    for L in lengths:
        cfg = load_config(
            dataset, ['mode=M', f'horizon={horizon}', f'input_length={L}', f'seed={seed}', 'intervals.levels=[]']
        )
        prep = prepare(cfg)
        train, val = prep.windows('train'), prep.windows('val')
        fitted = {}
        for spec in candidates:
            name, extra = parse_candidate(spec)
            t0 = time.perf_counter()
            if name == 'ensemble':
                members = [m for m in candidates if m != 'ensemble' and ':' not in m]
                params = {'members': members, 'member_params': {m: quiet(m) for m in members}}
                model = Ensemble(params, prep.state, seed)
                model.models = [fitted[m][0] for m in members]  # the members fitted above (same params and seed)
                inv = [1 / fitted[m][1] for m in members]
                model.weights_ = [w / sum(inv) for w in inv]
                fit_s = sum(fitted[m][2] for m in members)
            else:
                params = {**quiet(name), **extra}
                model = make_model(name, params, prep.state, seed).fit(train, val)
                fit_s = time.perf_counter() - t0
            v = evaluate(model, val, 'val_')[0]
            fitted[spec] = (model, v['val_mse'], fit_s)
            rec = {
                'L': L,
                'model': name,
                'spec': spec,
                'params': params,
                'val_mse': v['val_mse'],
                'val_mae': v['val_mae'],
            }
            tried.append({**rec, 'fit_s': fit_s})
            print(dataset, horizon, json.dumps(tried[-1]), flush=True)
            if best is None or v['val_mse'] < best[0]['val_mse']:
                best = (tried[-1], model, prep)
    rec, model, prep = best
    if not test:
        return tried, {**rec, 'test_mse': float('nan'), 'test_mae': float('nan'), 'windows': 0}
    t = evaluate(model, prep.windows('test'), 'test_')[0]  # the test part, read once
    return tried, {**rec, 'test_mse': t['test_mse'], 'test_mae': t['test_mae'], 'windows': t['test_windows']}


def write_experiment(
    dataset: str,
    horizon: int,
    model: str,
    L: int,
    params: dict,
    chosen: str = 'chosen on the validation part',
    source: str = 'bench/ett_m.py',
    mode: str = 'M',
    suffix: str | None = None,
) -> str:
    """Write the cell's configuration as `experiments/<dataset>_<mode><H>_<suffix or model>.yaml` (mode m or s);
    returns its name."""
    name = f'{dataset}_{mode.lower()}{horizon}_{suffix or model}'
    what = 'M mode (all 7 columns in and out)' if mode == 'M' else 'S mode (OT in and out)'
    table = 'ett_m.md' if mode == 'M' else 'ett.md'
    lines = [
        f'# {dataset.replace("etth", "ETTh")} {what}, H={horizon}: {model} at L={L},',
        f'# {chosen} ({source}, bench/tables/{table}).',
        f'# Reproduce: papermill nbs/train.ipynb out.ipynb -p config {name}',
        'defaults:',
        f'  - {dataset}',
        '  - _self_',
        f'name: {name}',
        f'mode: {mode}',
        f'input_length: {L}',
        f'horizon: {horizon}',
        f'model: {model}',
    ]
    if params and any(isinstance(v, (list, dict)) for v in params.values()):  # an ensemble's members: block YAML
        lines += yaml.safe_dump({'model_params': params}, sort_keys=False).splitlines()
    elif params:
        lines.append('model_params:')
        lines += [f'  {k}: {json.dumps(v)}' for k, v in params.items()]
    lines += ['intervals:', "  levels: []  # the protocol's point forecast"]
    (ROOT / 'experiments' / f'{name}.yaml').write_text('\n'.join(lines) + '\n')
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--datasets', nargs='+', default=['etth1', 'etth2'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--lengths', nargs='+', type=int, default=[720], help='input lengths L tried per cell')
    ap.add_argument(
        '--candidates',
        nargs='+',
        default=['linear', 'linear:norm=mean', 'fits', 'sparsetsf', 'ensemble'],
        help='model or model:key=value,...; ensemble: of the bare model names',
    )
    ap.add_argument('--val-only', action='store_true', help='choose only: the test part is not read')
    ap.add_argument('--write-experiments', action='store_true')
    ap.add_argument('--out', default='bench/tables/ett_m.md')
    a = ap.parse_args()
    lines = [f'`{command("bench/ett_m.py")}`  ({os.cpu_count()} CPUs)', '']
    lines += [
        '| dataset | H | chosen (validation) | L | val MSE | test MSE | test MAE | windows | best honest MSE '
        '| vs honest | tsforge before | fit s | experiment |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    detail = [
        '',
        'Validation MSE of every candidate (the chosen one in bold; the test part was not read for the others):',
        '',
    ]
    detail += ['| dataset | H | L | ' + ' | '.join(a.candidates) + ' |', '|---|---|---|' + '---|' * len(a.candidates)]
    total = 0.0
    for ds in a.datasets:
        for h in a.horizons:
            with ProcessPoolExecutor(1, mp_context=get_context('spawn')) as ex:
                tried, r = ex.submit(run_cell, ds, h, a.lengths, a.candidates, 0, not a.val_only).result()
            DS = ds.replace('etth', 'ETTh')
            hv, hname = HONEST[(DS, 'M')][HORIZONS.index(h)]
            bv, bname = BEFORE[(DS, h)]
            params = {k: v for k, v in r['params'].items() if k not in ('member_params', 'progress')}
            exp = write_experiment(ds, h, r['model'], r['L'], params) if a.write_experiments and not a.val_only else ''
            total += r['fit_s']
            if a.val_only:  # the test part was not read
                test = '– | – | – | ' + f'{hv:.3f} ({hname}) | –'
            else:
                test = f'{r["test_mse"]:.4f} | {r["test_mae"]:.4f} | {r["windows"]} | {hv:.3f} ({hname}) | '
                test += f'{(r["test_mse"] / hv - 1) * 100:+.1f}%'
            lines.append(
                f'| {DS} | {h} | {r["spec"]} | {r["L"]} | {r["val_mse"]:.4f} | {test} | '
                f'{bv:.4f} ({bname}) | {r["fit_s"]:.0f} | {f"`{exp}`" if exp else ""} |'
            )
            for L in a.lengths:
                cells = []
                for m in a.candidates:
                    t = next(x for x in tried if x['L'] == L and x['spec'] == m)
                    s = f'{t["val_mse"]:.4f} ({t["fit_s"]:.0f} s)'
                    cells.append(f'**{s}**' if (L, m) == (r['L'], r['spec']) else s)
                detail.append(f'| {DS} | {h} | {L} | ' + ' | '.join(cells) + ' |')
            print('\n'.join(lines[-1:]), flush=True)
            write(
                lines + detail + ['', f'Fit seconds of the chosen configurations, all cells above: {total:.0f} s.'],
                ROOT / a.out,
            )
    print((ROOT / a.out).read_text())


def write(out: list[str], path: Path):
    "The table so far (rewritten after every cell, so that a stopped run keeps the cells it finished)."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
