"""One store wherever you start: a job run from `nbs/` (as a JupyterLab kernel does) and a server started from the
project root find the same store; looking for a model never creates one."""

import os, subprocess, time

import pytest
import requests

from conftest import BIN, ROOT, free_port, stop, uvicorn_cmd, wait_http

from tsforge import store


def _env(**extra):
    "This environment without a TSFORGE_HOME / MLFLOW_TRACKING_URI: the store is found from the working directory."
    env = {k: v for k, v in os.environ.items() if k not in ('TSFORGE_HOME', 'MLFLOW_TRACKING_URI')}
    return {**env, 'PYTHONPATH': str(ROOT), **extra}


def _project(tmp_path):
    "A user's project: settings.ini at its root, notebooks in nbs/."
    proj = tmp_path / 'proj'
    (proj / 'nbs').mkdir(parents=True)
    (proj / 'settings.ini').write_text('[DEFAULT]\nlib_name = myproject\n')
    return proj


def test_project_root_and_home(tmp_path, monkeypatch):
    proj = _project(tmp_path)
    assert store.project_root(proj / 'nbs') == proj.resolve()
    monkeypatch.delenv('TSFORGE_HOME', raising=False)
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.chdir(proj / 'nbs')
    assert store.tsforge_home() == proj.resolve() / 'mlruns'
    assert store.tracking_uri() == f'sqlite:///{proj.resolve() / "mlruns" / "mlflow.db"}'
    assert not store.store_exists() and not (proj / 'mlruns').exists()  # nothing created by looking
    assert store.optuna_storage_url() == f'sqlite:///{proj.resolve() / "mlruns" / "optuna.db"}'
    monkeypatch.setenv('TSFORGE_HOME', str(tmp_path / 'elsewhere'))
    assert store.tsforge_home() == tmp_path / 'elsewhere'


@pytest.mark.slow
def test_train_from_nbs_serve_from_root(tmp_path):
    proj = _project(tmp_path)
    out = proj / 'nbs' / 'train-out.ipynb'
    r = subprocess.run(
        [
            str(BIN / 'papermill'),
            str(ROOT / 'nbs' / 'train.ipynb'),
            str(out),
            '-p',
            'config',
            'etth1',
            '-y',
            'overrides: [model=naive, input_length=48, horizon=24]',
        ],
        cwd=proj / 'nbs',
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (proj / 'mlruns' / 'mlflow.db').is_file() and not (proj / 'nbs' / 'mlruns').exists()
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        cwd=proj,
        env=_env(TSFORGE_MODEL='models:/tsforge-etth1@champion'),
    )
    try:
        wait_http(f'http://127.0.0.1:{port}/ready', proc)
        assert requests.get(f'http://127.0.0.1:{port}/ready', timeout=5).json()['version'] == '1'
    finally:
        stop(proc)


@pytest.mark.slow
def test_server_without_store_says_where_it_looked_and_creates_nothing(tmp_path):
    proj = _project(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        cwd=proj,
        env=_env(TSFORGE_MODEL='models:/tsforge-etth1@champion'),
    )
    try:
        url, t0, body = f'http://127.0.0.1:{port}/ready', time.time(), {}
        wait_http(url, proc, ok=(200, 503))
        while time.time() - t0 < 120:
            r = requests.get(url, timeout=5)
            body = r.json()
            if r.status_code == 503 and body.get('status') == 'failed':  # not still loading
                break
            time.sleep(0.3)
        assert r.status_code == 503
        # named relative to the project: where it looked, without the machine's paths (issue 7's redaction)
        assert 'sqlite:///<project>/mlruns/mlflow.db' in body['detail'], body
        assert str(proj.resolve()) not in str(body)
        assert not (proj / 'mlruns' / 'mlflow.db').exists()
    finally:
        stop(proc)


TRAIN = (
    'import sys; from tsforge.config import load_config; from tsforge.train import train\n'
    "train(load_config('etth1', sys.argv[1:]))"
)


def test_unreachable_tracking_server_is_one_store_error_without_the_password(tmp_path):
    "A train job against an MLflow server nobody answers for: one StoreError naming the setting, the password masked."
    port = free_port()  # closed: nothing listens there
    env = _env(
        MLFLOW_TRACKING_URI=f'http://mluser:trackpw999@127.0.0.1:{port}',
        MLFLOW_HTTP_REQUEST_MAX_RETRIES='0',
        MLFLOW_HTTP_REQUEST_TIMEOUT='2',
        TSFORGE_HOME=str(tmp_path / 'home'),
    )
    p = subprocess.run(
        [str(BIN / 'python'), '-c', TRAIN, 'model=naive', 'input_length=48', 'horizon=24'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode != 0
    assert 'trackpw999' not in p.stdout + p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith('tsforge.store.StoreError: tracking store '), p.stderr[-3000:]
    assert f'http://mluser:***@127.0.0.1:{port} (from MLFLOW_TRACKING_URI): cannot connect' in last, last
    assert 'During handling of the above exception' not in p.stderr  # the raw error (and its URL) is not chained


@pytest.fixture
def tracking_uri_env(monkeypatch):
    "Point this process's MLflow at another store for one test, then back at the session's store."
    yield monkeypatch
    monkeypatch.undo()
    store.configure(create=False)


def test_unreachable_database_and_refused_password_name_the_setting(tracking_uri_env):
    """A PostgreSQL store nobody answers for (tried once, not MLflow's ten retries over about 100 s) and a server that
    answers 401."""
    import http.server
    import threading

    mp = tracking_uri_env
    mp.setenv('MLFLOW_TRACKING_URI', f'postgresql://mluser:trackpw999@127.0.0.1:{free_port()}/mlflow')
    with pytest.raises(store.StoreError) as e:
        store.experiment_id('unreachable')
    msg = str(e.value)
    assert 'postgresql://mluser:***@127.0.0.1:' in msg and '(from MLFLOW_TRACKING_URI): cannot connect' in msg, msg
    assert 'trackpw999' not in msg and e.value.__suppress_context__
    assert 'trying to connect to it' in msg, msg  # tsforge's one probe, not MLflow's retries

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(('127.0.0.1', 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        mp.setenv('MLFLOW_TRACKING_URI', f'http://mluser:trackpw999@127.0.0.1:{srv.server_port}')
        mp.setenv('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '0')
        with pytest.raises(store.StoreError) as e:
            store.experiment_id('refused')
        msg = str(e.value)
        assert 'cannot authenticate' in msg and 'http://mluser:***@' in msg and 'trackpw999' not in msg, msg
    finally:
        srv.shutdown()
        srv.server_close()


def test_store_lost_during_or_at_the_end_of_a_run(own_store, monkeypatch, capsys):
    "A store that stops answering mid-run or as the run ends: one StoreError, no password, the run left closable."
    import mlflow
    from mlflow.exceptions import MlflowException

    from tsforge.config import load_config
    from tsforge.runs import dead_reason, start_run

    cfg = load_config('etth1', ['model=naive'])
    lost = MlflowException('API request to http://mluser:trackpw999@127.0.0.1:1/api failed: Connection refused')
    with pytest.raises(store.StoreError, match=r'cannot connect \(.*\), trying to log run') as e:
        with start_run(cfg, 'lost-mid-run') as run:
            raise lost
    assert 'trackpw999' not in str(e.value) and e.value.__suppress_context__
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == 'FAILED'

    def down(*a, **k):
        raise lost

    monkeypatch.setattr(mlflow.MlflowClient, 'set_terminated', down)  # what end_run calls, after leaving the run
    with pytest.raises(store.StoreError, match=r'cannot connect \(.*\), trying to end run .* as FINISHED') as e:
        with start_run(cfg, 'lost-at-the-end') as run:
            pass
    assert 'trackpw999' not in str(e.value)
    with pytest.raises(ZeroDivisionError):  # the job's own error goes on; the store's is said on stderr
        with start_run(cfg, 'failed-and-lost') as run2:
            1 / 0
    err = capsys.readouterr().err
    assert 'as FAILED' in err and 'trackpw999' not in err
    monkeypatch.undo()
    assert mlflow.active_run() is None
    for r in (run, run2):  # still RUNNING, its heartbeat stopped: the next job's reconcile closes it
        info = mlflow.MlflowClient().get_run(r.info.run_id)
        assert info.info.status == 'RUNNING' and dead_reason(info, grace=0) is not None
