"""ETT benchmark of tsforge models on the standard protocol (fit on train, early-stop on val, score every test window).

Usage: python bench/deep_ett.py CONFIG MODE MODEL HORIZONS [OVERRIDE ...]
  e.g. OMP_NUM_THREADS=1 TSFORGE_DATA_DIR=../shared/data/ett \
       python bench/deep_ett.py etth1 S dlinear 96,720 +model_params.progress=false
Prints one markdown row per horizon (test MSE/MAE on the scaled axis, fit seconds, epochs run / best epoch),
after a line with the command that made it.
"""
import os, shlex, sys, time

from tsforge.config import load_config
from tsforge.pipeline import fit_evaluate


def main(argv):
    if len(argv) < 4: sys.exit(__doc__)
    config, mode, model, horizons, *overrides = argv
    print(f"# OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python bench/deep_ett.py {shlex.join(argv)}")
    print('| dataset | mode | H | model | overrides | test_mse | test_mae | val_mse | fit_s | epochs (best) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for h in horizons.split(','):
        cfg = load_config(config, [f'mode={mode}', f'model={model}', f'horizon={h}', *overrides])
        ev = fit_evaluate(cfg)
        m, hist = ev.metrics, getattr(ev.model, 'history_', [])
        ep = f"{len(hist)} ({ev.model.best_epoch_})" if hist else '-'
        shown = ' '.join(o.removeprefix('+model_params.') for o in overrides if 'progress' not in o) or '-'
        print(f"| {cfg.data.dataset} | {mode} | {h} | {model} | {shown} | {m['test_mse']:.4f} | {m['test_mae']:.4f} | "
              f"{m['val_mse']:.4f} | {m['fit_seconds']:.0f} | {ep} |", flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
