"""The client/server path, and readiness telling the truth when the tracking server goes away (issue 16): a real
`mlflow server` on 127.0.0.1 (SQLite, one worker, proxied artifacts), a train job logging and registering through
MLFLOW_TRACKING_URI (the papermill job through a server: tests/test_multinode.py), a real uvicorn loading the model
through it and following its alias every 2 s; the tracking server is killed, then started again on the same port and
store."""

import os, signal, subprocess, sys, time

import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from conftest import ROOT, free_port, kill_group, start_mlflow, stop, uvicorn_cmd, wait_http

pytestmark = pytest.mark.slow

NAME = 'tsforge-ready'
TRAIN = f"""
from tsforge.config import load_config
from tsforge.train import train
train(load_config('etth1', ['model=naive', 'input_length=24', 'horizon=6', 'registry.model_name={NAME}']))
"""
# a check gives up after 2 s without retrying: overdue after 2 * 2 + 2 s (`Settings.overdue_after`), not 14 s
FAST_CHECKS = {'TSFORGE_CHECK_TIMEOUT_S': '2', 'TSFORGE_CHECK_RETRIES': '0'}


def until(cond, timeout=90, what='condition'):
    "Poll `cond()` until it returns something true (a bound on waiting, not a timing assert)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if got := cond():
            return got
        time.sleep(0.25)
    raise AssertionError(f'{what}: not within {timeout}s')


def history():
    d = pd.date_range('2020-01-01', periods=24, freq='h')
    return {'history': [{'date': str(t), 'OT': float(v)} for t, v in zip(d, np.arange(24.0))]}


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' ') or line.startswith(name + '{'):
            return float(line.rsplit(' ', 1)[1])
    raise AssertionError(f'{name} not in /metrics')


def test_ready_reports_a_dead_tracking_server_and_recovers(tmp_path):
    d = tmp_path / 'mlflow'
    d.mkdir()
    port = free_port()
    tracking = f'http://127.0.0.1:{port}'
    mlf = start_mlflow(d, port)
    srv = None
    try:
        wait_http(f'{tracking}/health', mlf, timeout=180)
        env = {**os.environ, 'MLFLOW_TRACKING_URI': tracking}
        r = subprocess.run([sys.executable, '-c', TRAIN], env=env, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
        mv = client.get_model_version_by_alias(NAME, 'champion')
        run = client.get_run(mv.run_id)
        assert mv.version == '1' and run.info.status == 'FINISHED' and run.data.metrics['test_windows'] > 2800
        assert run.info.artifact_uri.startswith('mlflow-artifacts:')  # the server proxies the artifacts
        assert 'predictions.parquet' in {f.path for f in client.list_artifacts(mv.run_id)}
        assert any((d / 'artifacts').rglob('MLmodel'))  # in the server's folder

        sport = free_port()
        url = f'http://127.0.0.1:{sport}'
        srv = subprocess.Popen(
            uvicorn_cmd(sport),
            cwd=ROOT,
            env={**env, 'TSFORGE_MODEL': f'models:/{NAME}@champion', 'TSFORGE_RELOAD_S': '2', **FAST_CHECKS},
        )
        wait_http(f'{url}/ready', srv)
        until(lambda: requests.get(f'{url}/ready').json()['last_check'], what='a first check')
        ok = requests.get(f'{url}/ready').json()
        assert ok['check_overdue'] is False and ok['check_failures'] == 0 and 'reload_error' not in ok, ok
        assert requests.post(f'{url}/predict', json=history()).status_code == 200

        # the tracking server dies: the registry checks fail, the loaded model keeps serving
        kill_group(mlf, signal.SIGKILL)
        failing = until(
            lambda: (
                (b := requests.get(f'{url}/ready')).status_code == 200
                and b.json().get('check_failures', 0) >= 2
                and b.json()
            ),
            what='/ready reporting failed checks',
        )
        assert failing['status'] == 'ready' and failing['version'] == '1' and failing['reload_error'], failing
        assert str(tmp_path) not in failing['reload_error']
        m = requests.get(f'{url}/metrics').text
        assert metric(m, 'tsforge_reload_failures_total{stage="check"}') >= 2
        assert metric(m, 'tsforge_reload_last_success_timestamp_seconds') > 0
        overdue = until(lambda: requests.get(f'{url}/ready').json()['check_overdue'], what='check_overdue')
        assert overdue is True
        assert metric(requests.get(f'{url}/metrics').text, 'tsforge_reload_check_overdue') == 1
        p = requests.post(f'{url}/predict', json=history())
        assert p.status_code == 200 and p.json()['model']['version'] == '1'

        mlf = start_mlflow(d, port)  # back on the same port and store: the checks recover by themselves
        wait_http(f'{tracking}/health', mlf, timeout=180)
        back = until(
            lambda: (
                (b := requests.get(f'{url}/ready').json())['check_failures'] == 0
                and not b['check_overdue']
                and 'reload_error' not in b
                and b
            ),
            what='recovery',
        )
        assert back['version'] == '1'
        assert metric(requests.get(f'{url}/metrics').text, 'tsforge_reload_check_overdue') == 0
    finally:
        if srv is not None:
            stop(srv)
        kill_group(mlf)
