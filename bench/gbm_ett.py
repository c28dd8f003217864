"""ETT benchmark of the `lightgbm` model (ridge base + trees on its residuals) next to its base, `linear`.

Usage: python bench/gbm_ett.py CONFIG MODE HORIZONS [OVERRIDE ...]
  e.g. TSFORGE_DATA_DIR=../shared/data/ett nice -n 10 python bench/gbm_ett.py etth1 S 96,192,336,720 +model_params.num_threads=1
Prints, after a line with the command that made it, one markdown row per horizon: test MSE/MAE on the scaled axis
for lightgbm and for the linear base alone, validation MSE of both, the blend weight and trees kept, fit seconds.
"""
import shlex, sys

import numpy as np

from tsforge.config import load_config
from tsforge.pipeline import fit_evaluate, prepare


def main(argv):
    if len(argv) < 3: sys.exit(__doc__)
    config, mode, horizons, *overrides = argv
    print(f"# python bench/gbm_ett.py {shlex.join(argv)}")
    print('| dataset | mode | H | test_mse | test_mae | linear test_mse | val_mse | linear val_mse | blend | trees | fit_s |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for h in horizons.split(','):
        cfg = load_config(config, [f'mode={mode}', 'model=lightgbm', f'horizon={h}', *overrides])
        prep = prepare(cfg)
        ev = fit_evaluate(cfg, prep)
        m, gbm = ev.metrics, ev.model
        val = prep.windows('val')
        lin_test = float(np.mean((gbm.base_.predict(prep.windows('test')) - ev.test_true) ** 2))
        lin_val = float(np.mean((gbm.base_.predict(val) - val.Y) ** 2))
        print(f"| {cfg.data.dataset} | {mode} | {h} | {m['test_mse']:.4f} | {m['test_mae']:.4f} | {lin_test:.4f} | "
              f"{m['val_mse']:.4f} | {lin_val:.4f} | {gbm.blend_:.2f} | {gbm.iterations_} | {m['fit_seconds']:.1f} |", flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
