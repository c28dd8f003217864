"""mlforecast's conformal intervals on the ETT S protocol, run in the peers' own venv (bench/peers/requirements.txt);
called by bench/intervals.py with --peer-python. Reads a JSON job on stdin, writes a JSON result on stdout.

Training cut-off: rows [0, val_end) (train + validation, as mlforecast calibrates inside its own training data by
cross-validation: PredictionIntervals(n_windows, h=H)). For each test origin the point forecast comes from
`predict(h, new_df=history)`; the bands then come from `predict(h, level=...)` without `new_df`, which continues from
the state the first call moved to that history and applies the conformity scores stored at fit time (passing
`level` together with `new_df` scores a fresh backtest on the history instead: see the notes in the table file)."""

import json
import sys
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings('ignore')


def main():
    job = json.loads(sys.stdin.read())
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.utils import PredictionIntervals
    from sklearn.linear_model import LinearRegression

    df = pd.read_csv(job['csv'], nrows=14400)
    s = pd.DataFrame({'unique_id': 'OT', 'ds': pd.to_datetime(df['date']), 'y': df['OT'].astype('float64')})
    H, levels, out = job['horizon'], job['levels'], {}
    models = {
        'linear': LinearRegression(),
        'lightgbm': LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=31, verbose=-1, n_jobs=1),
    }
    lags = list(range(1, 25)) + [48, 72, 96, 120, 144, 168, 336]
    for method in job['methods']:
        fc = MLForecast(models={job['model']: models[job['model']]}, freq='h', lags=lags)
        fc.fit(
            s.iloc[: job['val_end']],
            prediction_intervals=PredictionIntervals(n_windows=job['n_windows'], h=H, method=method),
            static_features=[],
        )
        res = []
        for o in job['origins']:
            hist = s.iloc[o - job['history'] : o]
            p = fc.predict(H, new_df=hist)
            b = fc.predict(H, level=levels)
            assert np.allclose(p[job['model']].to_numpy(), b[job['model']].to_numpy())
            row = {'pred': b[job['model']].tolist()}
            for lv in levels:
                row[f'lo_{lv}'] = b[f'{job["model"]}-lo-{lv}'].tolist()
                row[f'hi_{lv}'] = b[f'{job["model"]}-hi-{lv}'].tolist()
            res.append(row)
        out[method] = res
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
