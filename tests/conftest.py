"""Shared fixtures: the ETT data folder, throw-away MLflow stores, a trained etth1 model (by the real papermill job),
and real server processes on 127.0.0.1 (uvicorn, mlflow server) that are always stopped."""

import os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

if not os.environ.get('TSFORGE_DATA_DIR'):
    os.environ['TSFORGE_DATA_DIR'] = str((ROOT.parent / 'shared' / 'data' / 'ett').resolve())
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault(
    'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0'
)  # before ray is imported: Ray keeps 127.0.0.1 (notes/ray-loopback.md)
os.environ.pop('MLFLOW_TRACKING_URI', None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def uvicorn_cmd(port: int, *args: str) -> list[str]:
    "The command line of a real uvicorn serving tsforge on 127.0.0.1:`port` (the model comes from TSFORGE_MODEL)."
    return [
        str(BIN / 'uvicorn'),
        'tsforge.serve:app',
        '--host',
        '127.0.0.1',
        '--port',
        str(port),
        '--log-level',
        'warning',
        *args,
    ]


def papermill(notebook, out, config, overrides=(), env=None, cwd=ROOT, timeout=900):
    "Run a job notebook with papermill's command line, exactly as a user would; return the CompletedProcess."
    cmd = [str(BIN / 'papermill'), str(ROOT / 'nbs' / notebook), str(out), '-p', 'config', str(config)]
    if overrides:
        cmd += ['-y', 'overrides: [' + ', '.join(f'"{o}"' for o in overrides) + ']']
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def stop(proc, timeout=20):
    "Stop a process started by a test (SIGINT, then SIGKILL)."
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url, proc, timeout=120, ok=(200,)):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f'process exited ({proc.returncode}) before {url} answered')
        try:
            if requests.get(url, timeout=2).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f'{url} did not answer within {timeout}s')


@pytest.fixture(scope='session')
def store(tmp_path_factory):
    "A session-wide local MLflow store (SQLite + artifact folder) via TSFORGE_HOME."
    home = tmp_path_factory.mktemp('mlruns')
    old = os.environ.get('TSFORGE_HOME')
    os.environ['TSFORGE_HOME'] = str(home)
    from tsforge.tracking import configure

    configure()  # this process's MlflowClient() talks to the same store as the jobs it starts
    yield home
    if old is None:
        os.environ.pop('TSFORGE_HOME', None)
    else:
        os.environ['TSFORGE_HOME'] = old


@pytest.fixture(scope='session')
def trained(store, tmp_path_factory):
    "The etth1 experiment (linear, L=336, H=96) trained by the real train job; returns its details."
    out = tmp_path_factory.mktemp('jobs') / 'train-etth1.ipynb'
    r = papermill('train.ipynb', out, 'etth1', ['model=linear'])
    assert r.returncode == 0, r.stderr[-3000:]
    from tsforge import tracking

    info = tracking.resolve('models:/tsforge-etth1@champion')
    return {'out': out, **info}


@pytest.fixture(scope='session')
def server(trained):
    "A real uvicorn process on 127.0.0.1 serving models:/tsforge-etth1@champion."
    port = free_port()
    env = {**os.environ, 'TSFORGE_MODEL': 'models:/tsforge-etth1@champion'}
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        env=env,
        cwd=ROOT,
    )
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(f'{url}/ready', proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope='session')
def ray_local():
    "One local Ray for the whole session (2 CPUs, no dashboard, its own short temp dir); shut down at the end."
    import shutil, tempfile
    import ray

    old = os.environ.get('RAY_AUTH_MODE')
    os.environ['RAY_AUTH_MODE'] = 'disabled'
    tmp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short: Ray's socket paths live under it
    ray.init(address='local', num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1', _temp_dir=tmp)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop('RAY_AUTH_MODE', None)
        else:
            os.environ['RAY_AUTH_MODE'] = old
