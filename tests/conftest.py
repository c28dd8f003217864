"""Shared fixtures and helpers: the ETT data folder, throw-away MLflow stores (`isolated_store`: one way to point this
process and the processes it starts at a store), a trained etth1 model (by the real papermill job), the app in this
process (`app_client`) and real server processes on 127.0.0.1 (uvicorn, mlflow server) that are always stopped, and
the queries tests make of a store (`artifacts`, `children`, `parent_runs`, `versions`, `champion`, `last_run`,
`column` of a database).

Markers: `slow` marks process-level tests (real servers, kills, papermill kernels, Ray); `make test` runs them all,
`make test-fast` (`pytest -m "not slow"`) leaves them out."""

import os, signal, socket, subprocess, sys, time
from contextlib import contextmanager
from dataclasses import dataclass
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
# Ray Serve's controller gives a starting HTTP proxy 5 s per readiness check and kills it after three misses; a proxy
# worker (a new Python process importing Serve) can take longer than 15 s on a loaded 2-core machine, and serve.start
# then fails with ActorDiedError. The Ray processes the tests start inherit these longer limits.
for _k in ('RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S', 'RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S'):
    os.environ.setdefault(_k, '60')


# fixtures that start processes (papermill kernels, uvicorn, mlflow server, PostgreSQL, Ray): a test using one is slow
SLOW_FIXTURES = {
    'trained',
    'server',
    'ray_local',
    'serve_port',
    'ray_serve_url',
    'fuzz_server',
    'cv_job',
    'postgres',
    'mlflow_pg',
}


# tests that start Ray (the session's `ray_local`, Ray processes of their own, or marked `ray`): with pytest-xdist
# (`make test` runs two workers, `--dist loadgroup`) they all go to one worker, so one Ray runs at a time and
# `ray_local` starts once (and test_multimodel whole: its module fixture registers versions in the worker's store,
# which a second build on the same worker would turn into version 2)
RAY_MODULES = {'test_ray_serve', 'test_multinode', 'test_multimodel'}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark `slow` every test that uses a process-level fixture (tests that start processes themselves say so). With
    pytest-xdist, every test goes to the worker of its group: the tests that start Ray in one group, the others in one
    group per module, so a module's fixtures (a trained model, a cv job, a server, the docs site) are built once, not
    once per worker. The Ray group goes first, then the modules with the most process-level tests: the longest work
    starts first and the two workers end together. In the Ray group the two-node cluster's test goes first, before the
    session's `ray_local` starts: its raylets get 30 s (hard-coded in Ray) to register, which they missed once with a
    second Ray and its Serve actors running beside them."""
    groups = {}
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)
        ray = 'ray_local' in getattr(item, 'fixturenames', ()) or item.module.__name__ in RAY_MODULES
        ray = ray or item.get_closest_marker('ray') is not None
        groups[item] = 'ray' if ray else item.module.__name__
    slow = {}
    for item, g in groups.items():
        slow[g] = slow.get(g, 0) + (item.get_closest_marker('slow') is not None)
    items.sort(key=lambda i: (groups[i] != 'ray', -slow[groups[i]], groups[i], i.module.__name__ != 'test_multinode'))
    if getattr(config.option, 'loadgroup', False):  # an xdist worker of `--dist loadgroup`
        from _pytest.nodeid import NodeId

        for item in items:
            item.add_marker(pytest.mark.xdist_group(groups[item]))
            # pytest-xdist 3.8 names the group in the test's id (`<id>@<group>`, which its scheduler reads) through an
            # attribute pytest 9 no longer has: without this every test would be scheduled on its own
            if item.nodeid.rfind('@') <= item.nodeid.rfind(']'):  # an '@' in a parameter is not a group
                item._id = NodeId.parse(f'{item.nodeid}@{groups[item]}')


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


def papermill_cmd(notebook, out, config, overrides=()) -> list[str]:
    "The papermill command line a user types to run job notebook `notebook` (train.ipynb, cv.ipynb, tune.ipynb)."
    cmd = [str(BIN / 'papermill'), str(ROOT / 'nbs' / notebook), str(out), '-p', 'config', str(config)]
    if overrides:
        cmd += ['-y', 'overrides: [' + ', '.join(f'"{o}"' for o in overrides) + ']']
    return cmd


def papermill(notebook, out, config, overrides=(), env=None, cwd=ROOT, timeout=900):
    "Run a job notebook with papermill's command line, exactly as a user would; return the CompletedProcess."
    return subprocess.run(
        papermill_cmd(notebook, out, config, overrides),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
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


def start_mlflow(d, port, backend=None, log=False):
    """An `mlflow server` (one worker) on 127.0.0.1:`port`, in a process group of its own: `backend` (default a SQLite
    file `server.db` in `d`), artifacts proxied from `d/artifacts`, cwd `d`; its output to `d/server.log` if `log`."""
    out = open(Path(d) / 'server.log', 'w') if log else subprocess.DEVNULL
    backend = backend or f'sqlite:///{Path(d) / "server.db"}'
    cmd = [str(BIN / 'mlflow'), 'server', '--backend-store-uri', backend, '--artifacts-destination']
    cmd += [str(Path(d) / 'artifacts'), '--host', '127.0.0.1', '--port', str(port), '--workers', '1']
    # without MLflow's server-side job runner (a huey consumer for GenAI evaluation and trace roll-ups, which tsforge
    # does not use): the server answers in about half the time and runs no extra processes beside the tests
    env = {**os.environ, 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'false'}
    return subprocess.Popen(cmd, cwd=d, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc, sig=signal.SIGINT):
    "Signal the process group of a process started with `start_new_session` (a server and its workers), then stop it."
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    stop(proc)


@contextmanager
def mlflow_server_at(d, backend=None, log=False, timeout=240):
    "`start_mlflow` on a free port; yields its URL once `/health` answers; stops its whole process group."
    port = free_port()
    proc = start_mlflow(d, port, backend, log)
    try:
        wait_http(f'http://127.0.0.1:{port}/health', proc, timeout=timeout)
        yield f'http://127.0.0.1:{port}'
    finally:
        kill_group(proc)


@dataclass
class PgMlflow:
    "An `mlflow server` on PostgreSQL: its URL, its backend's URL (as users write it) and the folder it proxies."

    url: str
    backend: str
    artifacts: Path


@pytest.fixture(scope='session')
def mlflow_pg(postgres, tmp_path_factory):
    """`mlflow server` on a real PostgreSQL with a bare `postgresql://` backend URL and proxied artifacts (clients see
    `mlflow-artifacts:`), on 127.0.0.1; one per test process (its migrations take tens of seconds): tests using it
    register models of their own names."""
    d = tmp_path_factory.mktemp('mlflow-pg')
    backend = pg_database(postgres)  # psycopg 3, installed with tsforge, is what a bare URL means to SQLAlchemy
    with mlflow_server_at(d, backend=backend, log=True, timeout=300) as url:
        yield PgMlflow(url, backend, d / 'artifacts')


# --- stores: one way to isolate them ------------------------------------------------------------------------------

STORE_ENV = ('TSFORGE_HOME', 'MLFLOW_TRACKING_URI', 'MLFLOW_REGISTRY_URI', 'TSFORGE_OPTUNA_STORAGE')


@pytest.fixture(scope='session')
def postgres():
    """A real PostgreSQL (pgserver: Unix socket only, no TCP port), one per test process, stopped and removed at the
    end; a test takes a database of its own with `pg_database`."""
    pgserver = pytest.importorskip('pgserver')
    import shutil, tempfile

    d = tempfile.mkdtemp(prefix='pg', dir='/tmp')  # short: the Unix socket lives in it
    srv = pgserver.get_server(d, cleanup_mode='stop')
    try:
        yield srv
    finally:
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def pg_database(srv) -> str:
    "A new database on pgserver `srv`; its URL as users write it: postgresql://user:@/db?host=<socket folder>."
    import uuid

    name = f'db_{uuid.uuid4().hex[:12]}'
    srv.psql(f'CREATE DATABASE {name};')
    return srv.get_uri(database=name)


@contextmanager
def isolated_store(home):
    """Point this process (MLflow's tracking and registry) and the processes it starts (TSFORGE_HOME) at a store under
    `home` (MLflow + Optuna SQLite); put the environment and MLflow back as they were afterwards."""
    import mlflow

    from tsforge.store import configure

    old = {k: os.environ.get(k) for k in STORE_ENV}
    for k in STORE_ENV:  # MLFLOW_TRACKING_URI would win over TSFORGE_HOME
        os.environ.pop(k, None)
    os.environ['TSFORGE_HOME'] = str(home)
    configure()  # this process's MlflowClient() talks to the same store as the jobs it starts
    try:
        yield Path(home)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if os.environ.get('TSFORGE_HOME') or os.environ.get('MLFLOW_TRACKING_URI'):
            configure()
        else:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)


@pytest.fixture(scope='session', autouse=True)
def store(tmp_path_factory):
    """A session-wide local MLflow store (SQLite + artifact folder) via TSFORGE_HOME, shared by the session's jobs;
    always set up first, so that no test writes to a store in the checkout and every other store nests inside it."""
    with isolated_store(tmp_path_factory.mktemp('mlruns')) as home:
        yield home


@pytest.fixture
def own_store(tmp_path):
    "A throw-away store for one test; the previous store (the session's, if any) is restored afterwards."
    with isolated_store(tmp_path / 'home') as home:
        yield home


@pytest.fixture(scope='module')
def module_store(tmp_path_factory):
    "A throw-away store for one test module (tests keep apart by names); the previous store is restored afterwards."
    with isolated_store(tmp_path_factory.mktemp('home')) as home:
        yield home


def store_client(home):
    "An MlflowClient on the SQLite store under `home` (the store of jobs started with TSFORGE_HOME=`home`)."
    from mlflow import MlflowClient

    uri = f'sqlite:///{Path(home) / "mlflow.db"}'
    return MlflowClient(uri, uri)


# --- what a store holds ------------------------------------------------------------------------------------------


def _client(client=None):
    from mlflow import MlflowClient

    return client or MlflowClient()


def artifacts(run_id, path='', client=None) -> list[str]:
    "Every artifact file of run `run_id` (recursively, paths relative to the run's artifact root)."
    c, out = _client(client), []
    for f in c.list_artifacts(run_id, path):
        out += artifacts(run_id, f.path, c) if f.is_dir else [f.path]
    return out


def children(run_id, client=None) -> list:
    "The child runs of `run_id`; fold runs in fold order (others in MLflow's order)."
    c = _client(client)
    exp = c.get_run(run_id).info.experiment_id
    runs = c.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
    return sorted(runs, key=lambda r: int(r.data.params.get('fold.index', -1)))


def parent_runs(job, study=None, client=None) -> list:
    "Top-level runs of job `job` ('cv', 'tune', ...) in experiment tsforge, newest first (of one tune study)."
    c = _client(client)
    exp = c.get_experiment_by_name('tsforge')
    if exp is None:
        return []
    runs = c.search_runs([exp.experiment_id], f"tags.`tsforge.job` = '{job}'", order_by=['attribute.start_time DESC'])
    return [
        r
        for r in runs
        if 'mlflow.parentRunId' not in r.data.tags and study in (None, r.data.tags.get('tune.study_name'))
    ]


def last_run(client=None):
    "The newest run of experiment tsforge."
    c = _client(client)
    exp = c.get_experiment_by_name('tsforge')
    return c.search_runs([exp.experiment_id], order_by=['attribute.start_time DESC'], max_results=1)[0]


def versions(name='tsforge-etth1', client=None) -> dict:
    "The registered versions of model `name`, by version number (a string)."
    return {str(v.version): v for v in _client(client).search_model_versions(f"name='{name}'")}


def champion(name='tsforge-etth1', client=None) -> str | None:
    "The version the alias `champion` of model `name` points at (None: no such alias)."
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(client).get_model_version_by_alias(name, 'champion').version)
    except MlflowException:
        return None


def column(url: str, sql: str) -> list:
    "The first column of a query on the database at `url` (through SQLAlchemy and psycopg 3, as MLflow reads it)."
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as con:
            return [r[0] for r in con.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()


# --- serving: in this process, or a real uvicorn -------------------------------------------------------------------


def history_body(horizon=24) -> dict:
    "A /predict body: the 336 etth1 rows (date, OT) before row 2000."
    from tsforge.config import load_config
    from tsforge.prepare import prepare

    prep = prepare(load_config('etth1', [f'horizon={horizon}']))
    h = prep.frame.iloc[2000 - 336 : 2000][['date', 'OT']].copy()
    h['date'] = h['date'].astype(str)
    return {'history': h.to_dict(orient='records')}


@contextmanager
def app_client(uri: str, env: dict | None = None):
    """The tsforge app serving `uri` in this process through fastapi's TestClient (no socket): the same ASGI app
    `uvicorn tsforge.serve:app` runs, its settings read from the environment plus `env`; the first load has happened
    (successfully or not) when it yields. For the app's behaviour; what is about the process (startup, hot reload
    across processes, streamed bodies and timeouts, workers, signals) stays on a real uvicorn."""
    from fastapi.testclient import TestClient

    from tsforge.serve import create_app

    from tsforge.store import configure

    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in (env or {}).items():
                mp.setenv(k, v)
            mp.setenv('TSFORGE_MODEL', uri)
            with TestClient(create_app(uri, load_in_background=False), raise_server_exceptions=False) as client:
                yield client
    finally:  # loading points MLflow at the store of `env`: point it back at this process's store
        configure(create=False)


@contextmanager
def uvicorn(uri: str, env: dict | None = None, ready: bool = True, args: tuple = (), cwd=ROOT):
    "A real uvicorn serving `uri` on 127.0.0.1 (a free port); yields (base URL, process) once /ready (/health) is up."
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port, *args),
        cwd=cwd,
        env={**os.environ, 'TSFORGE_MODEL': uri, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(f'{url}/ready' if ready else f'{url}/health', proc)
        yield url, proc
    finally:
        stop(proc)


@contextmanager
def serving(uri: str, env: dict | None = None, socket: bool = False):
    """An HTTP client (httpx's API, paths relative to the server) of the app serving `uri`: in this process
    (`app_client`), or with `socket=True` over a real uvicorn on 127.0.0.1 (the parity check over a real socket)."""
    if not socket:
        with app_client(uri, env) as client:
            yield client
        return
    import httpx

    with uvicorn(uri, env) as (url, _), httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.fixture(scope='session')
def trained(store, tmp_path_factory):
    "The etth1 experiment (linear, L=336, H=96) trained by the real train job; returns its details."
    out = tmp_path_factory.mktemp('jobs') / 'train-etth1.ipynb'
    r = papermill('train.ipynb', out, 'etth1', ['model=linear'])
    assert r.returncode == 0, r.stderr[-3000:]
    from tsforge import bundle

    info = bundle.resolve('models:/tsforge-etth1@champion')
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


def _kill_processes_naming(text: str):
    "Kill this process's descendants whose command line contains `text`."
    import psutil

    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any(text in a for a in p.cmdline()):
                procs.append(p)
        except psutil.Error:
            pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


@pytest.fixture(scope='session')
def ray_local():
    "One local Ray for the whole session (2 CPUs, no dashboard, its own short temp dir); shut down at the end."
    import shutil, tempfile
    import ray

    old = os.environ.get('RAY_AUTH_MODE')
    os.environ['RAY_AUTH_MODE'] = 'disabled'
    tmp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short: Ray's socket paths live under it
    for attempt in range(3):  # Ray gives its raylet a fixed 30 s to register; on a loaded 2-core machine it can miss it
        try:
            ray.init(address='local', num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1', _temp_dir=tmp)
            break
        except Exception as e:
            ray.shutdown()
            _kill_processes_naming(tmp)  # what the failed start left running (its processes name the temp dir)
            if 'timed out during startup' not in str(e) or attempt == 2:
                raise
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop('RAY_AUTH_MODE', None)
        else:
            os.environ['RAY_AUTH_MODE'] = old


@pytest.fixture(scope='session')
def serve_port(ray_local):
    """Ray Serve on the session's Ray, its HTTP proxy on 127.0.0.1 (a free port), started once: a test module deploys
    its application at `/` with `serve.run` and deletes it afterwards (`serve.delete`); shut down at the end."""
    from ray import serve

    port = free_port()
    try:
        serve.start(http_options={'host': '127.0.0.1', 'port': port})
    except ray_local.exceptions.RayActorError:  # the first proxy was replaced (slow start): wait for the new one
        t0 = time.time()
        while not (p := serve.status().proxies) or any(v != 'HEALTHY' for v in p.values()):
            if time.time() - t0 > 180:
                raise
            time.sleep(1)
    try:
        yield port
    finally:
        serve.shutdown()


@pytest.fixture
def tiny(tmp_path):
    "Overrides that make a job take seconds: a small hourly series (600 rows, a CSV in tmp_path), short windows."
    import numpy, pandas

    t = pandas.date_range('2020-01-01', periods=600, freq='h')
    y = numpy.sin(numpy.arange(600) * 2 * numpy.pi / 24) + 0.1 * numpy.random.default_rng(0).normal(size=600)
    csv = tmp_path / 'tiny.csv'
    pandas.DataFrame({'date': t.strftime('%Y-%m-%d %H:%M:%S'), 'OT': y}).to_csv(csv, index=False)
    return [
        'data.dataset=null',
        f'data.path={csv}',
        'input_length=24',
        'horizon=8',
        'cv.n_windows=2',
        'cv.horizon=8',
        'cv.step=8',
    ]
