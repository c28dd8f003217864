"""Serving throughput and latency: a real uvicorn on 127.0.0.1, a bounded number of forecast requests.

    python bench/serve_load.py [--model models:/tsforge-etth1@champion] [--requests 400] [--concurrency 1 4 8]

Needs a registered model (run `make demo` or the train job first). Starts `uvicorn tsforge.serve:app`, waits for
/ready, sends real test-set histories (336 rows each) from a thread pool, and prints requests/s, latency
percentiles and the server's resident memory, headed by the command. Stops the server at the end.
"""
import argparse, os, shlex, sys, time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import requests

from tsforge.config import load_config
from tsforge.pipeline import prepare
from tsforge.serve import local_server
from tsforge.tracking import tracking_uri


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--config', default='etth1')
    ap.add_argument('--model', default=None)
    ap.add_argument('--requests', type=int, default=400)
    ap.add_argument('--concurrency', type=int, nargs='+', default=[1, 4, 8])
    ap.add_argument('--port', type=int, default=8766)
    a = ap.parse_args()
    cfg = load_config(a.config)
    uri = a.model or f'models:/{cfg.registry.model_name}@{cfg.registry.alias}'
    t0 = time.time()
    with local_server(uri, a.port, env={'MLFLOW_TRACKING_URI': tracking_uri()}) as (url, proc):
        ready_s = time.time() - t0
        meta = requests.get(f'{url}/metadata').json()
        prep = prepare(load_config(a.config))
        L, tc = meta['input_length'], meta['time_column']
        bodies = []
        for o in prep.origins('test')[:: max(1, len(prep.origins('test')) // 50)]:
            h = prep.frame.iloc[o - L:o][meta['required_columns']].copy(); h[tc] = h[tc].astype(str)
            bodies.append({'history': h.to_dict(orient='records')})
        print(f'`python bench/serve_load.py {shlex.join(sys.argv[1:])}`  ({os.cpu_count()} CPUs, model {uri} = '
              f'{meta["model"]} v{meta["version"]}, L={L}, H={meta["horizon"]}; server ready after {ready_s:.1f}s)\n')
        print('| concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors | server RSS MB |')
        print('|---|---|---|---|---|---|---|---|')
        session = requests.Session()
        for c in a.concurrency:
            def one(i):
                t = time.perf_counter()
                r = session.post(f'{url}/predict', json=bodies[i % len(bodies)], timeout=60)
                return time.perf_counter() - t, r.status_code
            with ThreadPoolExecutor(c) as ex:
                list(ex.map(one, range(min(20, a.requests))))  # warm-up
                t = time.perf_counter()
                res = list(ex.map(one, range(a.requests)))
                wall = time.perf_counter() - t
            lat = np.array([r[0] for r in res]) * 1000
            errs = sum(r[1] != 200 for r in res)
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            print(f'| {c} | {a.requests} | {a.requests / wall:.0f} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 95):.1f} | '
                  f'{np.percentile(lat, 99):.1f} | {errs} | {rss:.0f} |', flush=True)


if __name__ == '__main__':
    main()
