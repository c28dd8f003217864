"""HTTP parity for every model family (trees, torch, ensembles; S and M): train on small settings, serve the
registered model with a real uvicorn, and check test-set windows sent over HTTP reproduce the run's predictions."""

import os, subprocess

import numpy as np
import pandas as pd
import pytest
import requests

from conftest import ROOT, free_port, stop, uvicorn_cmd, wait_http
from tsforge.config import load_config
from tsforge.pipeline import train

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
}


@pytest.mark.parametrize('case', list(CASES))
def test_http_parity(store, case):
    model, mode, extra = CASES[case]
    name = f'tsforge-{case}'
    cfg = load_config(
        'etth1',
        [f'model={model}', f'mode={mode}', 'input_length=96', 'horizon=24', f'registry.model_name={name}', *extra],
    )
    res = train(cfg)
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        cwd=ROOT,
        env={**os.environ, 'TSFORGE_MODEL': f'models:/{name}@champion'},
    )
    try:
        url = f'http://127.0.0.1:{port}'
        wait_http(f'{url}/ready', proc)
        meta = requests.get(f'{url}/metadata').json()
        assert meta['model'] == model and meta['forecast_columns'] == res.prep.state.columns_out
        prep, pred = res.prep, res.predictions
        for o in prep.origins('test')[[0, 1234, -1]]:
            h = prep.frame.iloc[o - 96 : o][meta['required_columns']].copy()
            h['date'] = h['date'].astype(str)
            r = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')})
            assert r.status_code == 200, r.text
            fc = pd.DataFrame(r.json()['forecast'])
            exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].pivot(
                index='step', columns='series', values='y_pred'
            )
            got = fc[list(exp.columns)].to_numpy()
            assert got.shape == (24, len(res.prep.state.columns_out))
            assert np.abs(got - exp.to_numpy()).max() < 1e-6, case
    finally:
        stop(proc)
