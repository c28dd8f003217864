"""Serve the registered model of an experiment, send it one forecast request, print the forecast, stop the server.

    python serve/demo_client.py --config etth1 [--port 8765]

This is what `make demo` runs after the train job. It starts `uvicorn tsforge.serve:app` on 127.0.0.1
(`tsforge.serve.local_server`), waits for /ready, posts the last `input_length` rows before the first test origin,
prints the forecast with its 80% and 95% bands beside the actual values (and any drift warnings), and stops the
server whatever happens.
"""

import argparse, json

import pandas as pd
import requests

from tsforge.config import load_config
from tsforge.prepare import prepare
from tsforge.serve import local_server
from tsforge.store import tracking_uri


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--config', default='etth1')
    ap.add_argument('--port', type=int, default=8765)
    a = ap.parse_args()
    cfg = load_config(a.config)
    uri = f'models:/{cfg.registry.model_name}@{cfg.registry.alias}'
    print(f'starting: uvicorn tsforge.serve:app --host 127.0.0.1 --port {a.port}   (TSFORGE_MODEL={uri})', flush=True)
    with local_server(uri, a.port, env={'MLFLOW_TRACKING_URI': tracking_uri()}) as (url, _):
        meta = requests.get(f'{url}/metadata', timeout=10).json()
        print(
            'model:',
            json.dumps(
                {k: meta.get(k) for k in ('name', 'version', 'model', 'horizon', 'input_length', 'frequency', 'levels')}
            ),
        )
        prep = prepare(cfg)
        o = int(prep.origins('test')[0])
        L, tc = meta['input_length'], meta['time_column']
        hist = prep.frame.iloc[o - L : o].copy()
        hist[tc] = hist[tc].astype(str)
        body = {'history': hist[meta['required_columns']].to_dict(orient='records')}
        if meta.get('levels'):  # the calibrated interval levels: ask for the bands
            body['levels'] = meta['levels']
        print(f'POST {url}/predict  ({len(hist)} history rows, last {hist[tc].iloc[-1]})')
        r = requests.post(f'{url}/predict', json=body, timeout=60)
        r.raise_for_status()
        fc = pd.DataFrame(r.json()['forecast'])
        warnings = r.json().get('warnings', [])
        for w in warnings:
            print('warning:', w)
        if warnings:  # the history is the last test window: months after the validation part the thresholds came from
            print(
                '  (the server still forecasts; a drift warning says this history is unlike the training windows by a'
                ' statistic\n   whose threshold is the 99th percentile over validation windows: 1 window in 100 of'
                ' those would cross it)'
            )
        actual = prep.frame.iloc[o : o + len(fc)][meta['forecast_columns']].to_numpy()
        for i, c in enumerate(meta['forecast_columns']):
            fc[f'{c}_actual'] = actual[:, i]
        pd.set_option('display.width', 120)
        print(
            f'{len(fc)}-step forecast'
            + (f' with {", ".join(f"{v:g}" for v in meta["levels"])}% bands:' if meta.get('levels') else ':')
        )
        print(fc.to_string())
    print('server stopped')
    print(
        f'\nBrowse the runs and the registry:\n  .venv/bin/mlflow ui --backend-store-uri {tracking_uri()} '
        '--port 5000   # then open http://127.0.0.1:5000'
    )


if __name__ == '__main__':
    main()
