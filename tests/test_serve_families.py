"""HTTP parity for every model family (trees, torch, ensembles; S and M): train on small settings, serve the
registered model (in this process; one family over a real uvicorn), and check test-set windows sent over HTTP
reproduce the run's predictions."""

import numpy as np
import pandas as pd
import pytest

from conftest import serving
from tsforge.config import load_config
from tsforge.train import train

CASES = {
    'lightgbm-S': ('lightgbm', 'S', ['+model_params.n_estimators=40', '+model_params.num_threads=1']),
    'dlinear-M': ('dlinear', 'M', ['+model_params.epochs=1', '+model_params.progress=false']),
    'patchtst-S': ('patchtst', 'S', ['+model_params.epochs=1', '+model_params.progress=false']),
    'ensemble-MS': (
        'ensemble',
        'MS',
        [
            '+model_params.members=[linear,dlinear]',
            '+model_params.member_params={dlinear: {epochs: 1, progress: false}}',
        ],
    ),
    'ensemble-specs-M': (  # what tune.ensemble writes: the same family twice, one member on the last 48 of 96 rows
        'ensemble',  # (the other reads the other series' last 24 values: cross; so do the per-channel trees' features)
        'M',
        [
            '+model_params.members=[{model: linear, input_length: 48, model_params: {norm: mean}}, '
            '{model: linear, model_params: {cross: 24}}, {model: lightgbm, model_params: {n_estimators: 20, '
            'num_threads: 1, max_rows: 20000, per_channel: true, features: {cross: true}}}]',
            '+model_params.weights=equal',
        ],
    ),
}


SOCKET = 'dlinear-M'  # served by a real uvicorn process (the others by the same app in this process)


@pytest.mark.parametrize('case', [pytest.param(c, marks=pytest.mark.slow) if c == SOCKET else c for c in CASES])
def test_http_parity(store, case):
    model, mode, extra = CASES[case]
    name = f'tsforge-{case}'
    cfg = load_config(
        'etth1',
        [f'model={model}', f'mode={mode}', 'input_length=96', 'horizon=24', f'registry.model_name={name}', *extra],
    )
    res = train(cfg)
    with serving(f'models:/{name}@champion', socket=case == SOCKET) as http:
        meta = http.get('/metadata').json()
        assert meta['model'] == model and meta['forecast_columns'] == res.prep.state.columns_out
        prep, pred = res.prep, res.predictions
        for o in prep.origins('test')[[0, 1234, -1]]:
            h = prep.frame.iloc[o - 96 : o][meta['required_columns']].copy()
            h['date'] = h['date'].astype(str)
            r = http.post('/predict', json={'history': h.to_dict(orient='records')})
            assert r.status_code == 200, r.text
            fc = pd.DataFrame(r.json()['forecast'])
            exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].pivot(
                index='step', columns='series', values='y_pred'
            )
            got = fc[list(exp.columns)].to_numpy()
            assert got.shape == (24, len(res.prep.state.columns_out))
            assert np.abs(got - exp.to_numpy()).max() < 1e-6, case
