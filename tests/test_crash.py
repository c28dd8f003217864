"""Jobs killed for real (SIGKILL at each phase, SIGTERM, Ctrl-C): the store stays consistent. (Jobs started together
on a fresh store: tests/test_jobs_at_once.py.)

Each job is a separate `python -c` process calling the library exactly as the job notebooks do, with cheap models
(naive, seasonal_naive, linear on L=48, H=24). `TSFORGE_KILL_AT=<phase>` makes a job kill itself at a phase boundary
(`store.checkpoint`)."""

import contextlib, os, signal, subprocess, sys, time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import BIN, ROOT, champion, free_port, kill_group, start_mlflow, store_client, versions, wait_http

pytestmark = pytest.mark.slow  # real processes (jobs killed, kernels, servers)

SMALL = ['input_length=48', 'horizon=24']
TRAIN = (
    'import sys; from tsforge.config import load_config; from tsforge.train import train\n'
    "r = train(load_config('etth1', sys.argv[1:]))\nprint('PROMOTED' if r.promoted else 'KEPT', r.version)"
)
CV = (
    'import sys; from tsforge.config import load_config; from tsforge.cv import backtest\n'
    "backtest(load_config('etth1', sys.argv[1:]))"
)


def start(home, code, overrides, kill_at=None, env=None):
    e = {**os.environ, 'TSFORGE_HOME': str(home), 'PYTHONPATH': str(ROOT), **(env or {})}
    e.pop('TSFORGE_KILL_AT', None)
    e.pop('MLFLOW_TRACKING_URI', None)
    if kill_at:
        e['TSFORGE_KILL_AT'] = kill_at
    return subprocess.Popen(
        [sys.executable, '-c', code, *overrides],
        env=e,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background commands with SIGINT ignored, and Python keeps an ignored
        # SIGINT: restore the default so Ctrl-C reaches the job however the test run itself was started
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run(home, code, overrides, kill_at=None, env=None, timeout=300):
    p = start(home, code, overrides, kill_at, env)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def all_runs(c):
    exps = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(exps, max_results=1000)


def check_invariants(c, name='tsforge-etth1'):
    "No version whose run is not FINISHED; the alias only on a FINISHED run's version."
    for v in versions(name, c).values():
        assert c.get_run(v.run_id).info.status == 'FINISHED', (v.version, c.get_run(v.run_id).info.status)
    if (ch := champion(name, c)) is not None:
        assert c.get_run(c.get_model_version(name, ch).run_id).info.status == 'FINISHED'


PHASES = ['loading', 'fitting', 'logging', 'finished', 'registered']


def test_sigkill_at_each_phase_leaves_store_consistent(tmp_path):
    """A naive champion, then a (better) linear job SIGKILLed at each phase in turn, then a normal job. After each kill
    the invariants hold and the alias has not moved; each next job's start closes the runs whose process is dead."""
    c = store_client(tmp_path)
    rc, out, err = run(tmp_path, TRAIN, ['model=naive', *SMALL])
    assert rc == 0 and 'PROMOTED 1' in out, err[-3000:]
    dead = []  # runs left RUNNING by a kill
    for phase in [*PHASES, None]:
        before_versions, before_champion = set(versions(client=c)), champion(client=c)
        before_runs = {r.info.run_id for r in all_runs(c)}
        rc, out, err = run(tmp_path, TRAIN, ['model=linear' if phase else 'model=naive', *SMALL], kill_at=phase)
        for r in dead:  # this job's start reconciled the previous kill
            r2 = c.get_run(r.info.run_id)
            assert r2.info.status == 'FAILED' and r2.info.end_time, (phase, r2.info.status)
            assert f'process {r.data.tags["tsforge.pid"]} on' in r2.data.tags['tsforge.reconciled']
        dead = []
        check_invariants(c)
        assert champion(client=c) == before_champion, phase  # linear is better, but a killed job moves nothing
        if phase is None:
            assert rc == 0, err[-3000:]
            break
        assert rc == -9, (phase, rc, err[-2000:])
        [killed] = [r for r in all_runs(c) if r.info.run_id not in before_runs]
        new_versions = set(versions(client=c)) - before_versions
        if phase in ('loading', 'fitting', 'logging'):
            assert killed.info.status == 'RUNNING' and not new_versions, phase
            dead.append(killed)
        elif phase == 'finished':  # the run is committed, nothing registered yet
            assert killed.info.status == 'FINISHED' and not new_versions
        else:  # registered, killed before the promotion gate
            assert killed.info.status == 'FINISHED' and len(new_versions) == 1
            assert versions(client=c)[new_versions.pop()].run_id == killed.info.run_id
    assert not [r for r in all_runs(c) if r.info.status == 'RUNNING']


def test_kill_while_creating_store_leaves_no_store(tmp_path):
    rc, out, err = run(tmp_path, TRAIN, ['model=naive', *SMALL], kill_at='store_init')
    assert rc == -9 and not (tmp_path / 'mlflow.db').exists()
    rc, out, err = run(tmp_path, TRAIN, ['model=naive', *SMALL])
    assert rc == 0 and 'PROMOTED 1' in out, err[-3000:]
    assert not list(tmp_path.glob('.mlflow.db.init-*'))


def test_half_created_store_is_reported(tmp_path):
    "A store left half-created (an older version killed while creating it) stops the job with what to do."
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sqlalchemy.create_engine(f'sqlite:///{tmp_path / "mlflow.db"}')
    InitialBase.metadata.create_all(engine)
    engine.dispose()  # the first step of MLflow's init, no migrations
    rc, out, err = run(tmp_path, TRAIN, ['model=naive', *SMALL])
    assert rc != 0 and 'StoreError' in err
    assert f'tracking store {tmp_path / "mlflow.db"}' in err and 'half-created' in err
    assert f'holds no runs: delete it (rm {tmp_path / "mlflow.db"})' in err


CV_SMALL = ['model=naive', *SMALL, 'cv.n_windows=2', 'cv.executor=serial']


def test_cv_job_killed_in_a_fold_is_closed_by_the_next_job(tmp_path):
    rc, out, err = run(tmp_path, CV, CV_SMALL, kill_at='fold')
    assert rc == -9, err[-2000:]
    c = store_client(tmp_path)
    dead = all_runs(c)
    assert sorted(r.info.status for r in dead) == ['RUNNING', 'RUNNING']  # the parent and its first fold
    rc, out, err = run(tmp_path, CV, CV_SMALL)
    assert rc == 0, err[-3000:]
    for r in dead:
        r = c.get_run(r.info.run_id)
        assert r.info.status == 'FAILED' and 'has exited' in r.data.tags['tsforge.reconciled']
    assert not [r for r in all_runs(c) if r.info.status == 'RUNNING']


def test_ctrl_c_ends_the_run_killed(tmp_path):
    "SIGINT (Ctrl-C) during fitting: the run ends KILLED (not RUNNING, not FAILED), nothing registered."
    rc, out, err = run(tmp_path, TRAIN, ['model=naive', *SMALL], kill_at='fitting:INT')
    assert rc != 0 and 'KeyboardInterrupt' in err, err[-2000:]
    c = store_client(tmp_path)
    [r] = all_runs(c)
    assert r.info.status == 'KILLED' and r.info.end_time and r.data.tags['tsforge.killed'] == 'SIGINT (Ctrl-C)'
    assert not versions(client=c)


def test_cv_sigterm_ends_parent_and_child_killed(tmp_path):
    rc, out, err = run(tmp_path, CV, CV_SMALL, kill_at='fold:TERM')
    assert rc != 0, err[-2000:]
    runs = all_runs(store_client(tmp_path))
    assert sorted(r.info.status for r in runs) == ['KILLED', 'KILLED']


def test_cv_sigterm_stops_its_local_workers_at_once(tmp_path):
    """SIGTERM to a cv job whose folds run in local worker processes: the workers are stopped, not waited for (before,
    the job waited for the folds in flight to end: 12 s for dlinear at 20 epochs, here hours), and leave nothing
    behind (tqdm's multiprocessing lock made the resource tracker warn of "leaked semaphore objects")."""
    import psutil

    err_log = tmp_path / 'err.log'
    e = {**os.environ, 'TSFORGE_HOME': str(tmp_path), 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    e.pop('MLFLOW_TRACKING_URI', None)
    endless = ['model=dlinear', *SMALL, '+model_params.epochs=100000', '+model_params.patience=100000']
    endless += ['cv.n_windows=2', 'cv.executor=local', 'cv.n_jobs=2']
    with err_log.open('w') as err:
        p = subprocess.Popen([sys.executable, '-c', CV, *endless], env=e, cwd=ROOT, stdout=err, stderr=err)
    kids = []
    try:
        t0 = time.time()
        while 'epoch' not in err_log.read_text() and p.poll() is None and time.time() - t0 < 300:
            time.sleep(0.2)  # a worker trains
        assert p.poll() is None, err_log.read_text()[-3000:]
        kids = psutil.Process(p.pid).children(recursive=True)
        p.terminate()
        p.wait(timeout=120)
        _, alive = psutil.wait_procs(kids, timeout=60)
        assert not alive, alive
    finally:
        for k in [p, *kids]:  # on a failure: the job and its workers (an orphaned worker would train for hours)
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                k.kill()
    err = err_log.read_text()
    assert p.returncode != 0 and 'JobKilled' in err and 'leaked semaphore' not in err, err[-3000:]
    runs = all_runs(store_client(tmp_path))
    assert [r.info.status for r in runs] == ['KILLED']  # the job's run (a fold's is logged once the fold is done)


@pytest.mark.ray
@pytest.mark.parametrize('when', ['training', 'ray.init'])
def test_cv_on_ray_sigterm_ends_killed(tmp_path, when):
    """SIGTERM to a cv job whose folds run on a local Ray of its own (`cv.executor=ray`), while they train or while
    `ray.init` starts that Ray: the job stops at once, its run ends KILLED with SIGTERM as the reason, and every Ray
    process it started is gone. Before, `ray.init` replaced the job's SIGTERM handler with `sys.exit`: the run ended
    FAILED ("SystemExit: 1") and the job aborted (exit -6); `ray.get` turns the handler's `JobKilled` into a bare
    KeyboardInterrupt, which the run took for Ctrl-C; and during `ray.init`, the dashboard and runtime-env agents it
    had started outlived the job by about a minute."""
    import shutil, tempfile

    import psutil

    ray_tmp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short (Ray's socket paths); every Ray process names it

    def ray_procs():
        out = []
        for q in psutil.process_iter(['cmdline']):
            with contextlib.suppress(psutil.Error):
                if ray_tmp in ' '.join(q.info['cmdline'] or []):
                    out.append(q)
        return out

    err_log = tmp_path / 'err.log'
    e = {**os.environ, 'TSFORGE_HOME': str(tmp_path), 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    e.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE='disabled')
    e.pop('MLFLOW_TRACKING_URI', None)
    e.pop('RAY_ADDRESS', None)
    endless = ['model=dlinear', *SMALL, '+model_params.epochs=100000', '+model_params.patience=100000']
    endless += ['cv.n_windows=2', 'cv.executor=ray', 'cv.n_jobs=2']
    with err_log.open('w') as err:
        p = subprocess.Popen([sys.executable, '-c', CV, *endless], env=e, cwd=ROOT, stdout=err, stderr=err)
    try:
        t0 = time.time()
        if when == 'training':
            while 'epoch' not in err_log.read_text() and p.poll() is None and time.time() - t0 < 300:
                time.sleep(0.2)  # a fold trains in a Ray worker
        else:
            while not any(q.name() == 'raylet' for q in ray_procs()) and p.poll() is None and time.time() - t0 < 300:
                time.sleep(0.05)  # ray.init has started the raylet, and goes on to start its agents
        assert p.poll() is None and ray_procs(), err_log.read_text()[-3000:]
        p.terminate()
        p.wait(timeout=120)
        _, alive = psutil.wait_procs(ray_procs(), timeout=20)  # the agents lived on ~70 s after a kill during ray.init
        assert not alive, [(q.pid, q.name()) for q in alive]
    finally:
        for q in [*ray_procs(), p]:  # on a failure: the job and its Ray (a worker would train for hours)
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                q.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    err = err_log.read_text()
    assert p.returncode == 1 and 'JobKilled: SIGTERM' in err and 'SystemExit' not in err, err[-3000:]
    [r] = all_runs(store_client(tmp_path))
    assert (r.info.status, r.data.tags.get('tsforge.killed')) == ('KILLED', 'SIGTERM'), r.data.tags


def test_sigterm_from_outside(tmp_path):
    """A real SIGTERM from another process while the job fits: the run ends KILLED. The job stops itself (SIGSTOP) at
    the fitting boundary so that the signal arrives mid-run, then is continued."""
    import psutil

    p = start(tmp_path, TRAIN, ['model=naive', *SMALL], kill_at='fitting:STOP')
    proc, t0 = psutil.Process(p.pid), time.time()
    while proc.status() != psutil.STATUS_STOPPED and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    assert proc.status() == psutil.STATUS_STOPPED
    p.terminate()
    proc.resume()
    out, err = p.communicate(timeout=120)
    assert p.returncode != 0 and 'JobKilled' in err, err[-2000:]
    c = store_client(tmp_path)
    [r] = all_runs(c)
    assert r.info.status == 'KILLED' and r.data.tags['tsforge.killed'] == 'SIGTERM' and not versions(client=c)


def test_reconcile_command_uses_heartbeats_for_other_hosts(tmp_path):
    "A run on another host is closed once its heartbeat is older than the grace period; a fresh one is left alone."
    c = store_client(tmp_path)
    exp = c.create_experiment('tsforge')
    old = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    new = datetime.now(timezone.utc).isoformat()
    base = {'tsforge.host': 'another-host', 'tsforge.pid': '1', 'tsforge.pid_start': '0'}
    stale = c.create_run(exp, tags={**base, 'tsforge.heartbeat': old}).info.run_id
    alive = c.create_run(exp, tags={**base, 'tsforge.heartbeat': new}).info.run_id
    legacy = c.create_run(exp).info.run_id  # no heartbeat: left alone unless asked
    env = {**os.environ, 'TSFORGE_HOME': str(tmp_path), 'PYTHONPATH': str(ROOT)}
    r = subprocess.run(
        [sys.executable, '-m', 'tsforge.runs', 'reconcile'], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and '1 dead run(s) marked FAILED' in r.stdout, r.stdout + r.stderr
    assert c.get_run(stale).info.status == 'FAILED'
    assert 'last heartbeat' in c.get_run(stale).data.tags['tsforge.reconciled']
    assert c.get_run(alive).info.status == 'RUNNING' and c.get_run(legacy).info.status == 'RUNNING'
    r = subprocess.run(
        [sys.executable, '-m', 'tsforge.runs', 'reconcile', '--untagged-after', '0'],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert c.get_run(legacy).info.status == 'FAILED' and c.get_run(alive).info.status == 'RUNNING'
    c.set_terminated(alive, 'FINISHED')


def test_papermill_job_sigterm_ends_run_killed_with_notebook(tmp_path):
    """SIGTERM to a papermill train job (what a scheduler sends): papermill dies, and its kernel ends the run KILLED
    with the notebook executed so far before it exits, even when the store is slow to answer (here: locked for 3 s
    by another writer; ipykernel's own parent poller would exit the kernel within a second, leaving the run RUNNING).
    The kernel pauses in the fitting phase so the signal arrives while the run is open."""
    import sqlite3

    import psutil

    out = tmp_path / 'out.ipynb'
    env = {**os.environ, 'TSFORGE_HOME': str(tmp_path), 'PYTHONPATH': str(ROOT), 'TSFORGE_KILL_AT': 'fitting:PAUSE'}
    p = subprocess.Popen(
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
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        c, t0 = None, time.time()
        while time.time() - t0 < 300:  # until the run exists and has its data logged
            if (tmp_path / 'mlflow.db').exists():
                c = store_client(tmp_path)
                if [r for r in all_runs(c) if 'data.sha256' in r.data.tags]:
                    break
            time.sleep(0.2)
        kernels = psutil.Process(p.pid).children()
        lock = sqlite3.connect(tmp_path / 'mlflow.db', isolation_level=None, timeout=60)
        lock.execute('BEGIN EXCLUSIVE')  # a busy store: the kernel's writes wait for it
        p.terminate()
        p.wait(timeout=60)
        time.sleep(3)
        assert all(k.is_running() for k in kernels)  # still closing the run
        lock.execute('COMMIT')
        lock.close()
        _, alive = psutil.wait_procs(kernels, timeout=120)  # the kernel exits once it has closed the run
        assert not alive, alive
        [r] = all_runs(c)
        assert r.info.status == 'KILLED', r.info.status  # set last: the reason and the notebook are logged before it
        assert 'papermill or Jupyter' in r.data.tags['tsforge.killed']
        assert [a.path for a in c.list_artifacts(r.info.run_id, 'notebook')] == ['notebook/out.ipynb']
    finally:
        if p.poll() is None:
            p.kill()


HUNG = """
import os, signal, sys, threading, time
from tsforge import runs
from tsforge.config import load_config

def parent_gone():  # the tracking server stops answering, then the kernel's parent exits
    os.killpg(int(sys.argv[1]), signal.SIGSTOP)
    runs._HEARTBEAT.parent_exit("the kernel's parent exited", wait=30)

with runs.start_run(load_config('etth1', ['model=naive']), 'hung') as run:
    threading.Thread(target=parent_gone, daemon=True).start()
    try:
        time.sleep(60)
    except runs.JobKilled:
        print('JobKilled', flush=True)
        os._exit(0)  # the run's end would wait for the server
print('not stopped', flush=True)
os._exit(1)
"""


def test_parent_exit_stops_the_job_while_the_tracking_server_hangs(tmp_path):
    """The kernel's parent exits while the tracking server does not answer: the job is still stopped (its workers with
    it), the runs being closed beside it (before, closing them first held the stop back past the kernel's grace:
    "not stopped" after 57 s; now 10 s)."""
    port = free_port()
    srv = start_mlflow(tmp_path, port)
    try:
        wait_http(f'http://127.0.0.1:{port}/health', srv, timeout=240)
        env = {**os.environ, 'MLFLOW_TRACKING_URI': f'http://127.0.0.1:{port}', 'PYTHONPATH': str(ROOT)}
        r = subprocess.run(
            [sys.executable, '-c', HUNG, str(srv.pid)], env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0 and 'JobKilled' in r.stdout, (r.stdout, r.stderr[-3000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(srv.pid, signal.SIGCONT)
        kill_group(srv, signal.SIGKILL)


@pytest.mark.parametrize('when', ['starting', 'running'])
def test_papermill_tune_job_sigterm_stops_its_workers(tmp_path, when):
    """SIGTERM to a papermill tune job with local worker processes: the kernel stops the job as SIGTERM would, so its
    workers stop too (before, they ran on, orphaned, through the rest of the study after the kernel had exited). The
    queued trials stay for a resume, the run ends KILLED with the notebook. `starting`: killed while the workers start
    (before, the job's main thread was stopped while sending a worker its start-up data: that worker died with
    "pickle data was truncated" and the run ended FAILED, "can only join a started process", in CI); `running`:
    while they run trials. A running trial ends FAIL, or, where its
    worker does not stop on SIGTERM and is killed after 30 s, stays RUNNING until its heartbeat goes stale and the
    resumed study fails it. (Workers blocked on the study's SQLite file, writing their trial's FAIL, while a reader
    held it: 4 of 7 runs on a loaded machine before the storage was switched to WAL, none of 5 after.)"""
    import collections

    import optuna
    import psutil

    def cmdline(proc):
        try:
            return proc.cmdline()
        except psutil.Error:  # a short-lived child, gone already
            return []

    env = {**os.environ, 'TSFORGE_HOME': str(tmp_path), 'PYTHONPATH': str(ROOT)}
    env.pop('TSFORGE_OPTUNA_STORAGE', None)
    env.pop('MLFLOW_TRACKING_URI', None)
    overrides = [
        'model=linear',
        'input_length=96',
        'horizon=24',
        'cv.n_windows=3',
        'cv.horizon=240',
        'cv.step=240',
        'tune.n_trials=40',
        'tune.executor=local',
        'tune.n_workers=2',
        'tune.retrain=false',
        "'+tune.space.input_length={low: 48, high: 192, step: 48}'",
    ]
    cmd = [str(BIN / 'papermill'), str(ROOT / 'nbs' / 'tune.ipynb'), str(tmp_path / 'out.ipynb')]
    cmd += ['-p', 'config', 'etth1', '-y', f'overrides: [{", ".join(overrides)}]']
    log = tmp_path / 'papermill.log'
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open('w'), stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while time.time() - t0 < 300:  # the kernel and its two workers (and multiprocessing's resource tracker)
            kids = psutil.Process(p.pid).children(recursive=True)
            if sum('spawn_main' in ' '.join(cmdline(k)) for k in kids) >= (1 if when == 'starting' else 2):
                break
            time.sleep(0.05 if when == 'starting' else 0.5)
        if when == 'running':
            time.sleep(3)  # the workers load the study and run trials
        kids = psutil.Process(p.pid).children(recursive=True)
        assert len(kids) >= (2 if when == 'starting' else 3), kids
        p.terminate()
        p.wait(timeout=60)
        t1 = time.time()
        _, alive = psutil.wait_procs(kids, timeout=120)
        assert not alive, [(k.pid, cmdline(k)[-3:]) for k in alive]
        stopped = time.time() - t1
    finally:
        if p.poll() is None:
            p.kill()
    c = store_client(tmp_path)
    [run] = [r for r in all_runs(c) if 'mlflow.parentRunId' not in r.data.tags]
    why = (run.data.tags.get('tsforge.error'), stopped, log.read_text()[-3000:])
    assert run.info.status == 'KILLED' and 'papermill or Jupyter' in run.data.tags['tsforge.killed'], why
    assert [a.path for a in c.list_artifacts(run.info.run_id, 'notebook')] == ['notebook/out.ipynb']
    assert 'UnpicklingError' not in log.read_text(), why  # no worker was cut off while it started
    assert not c.search_registered_models()
    storage = optuna.storages.RDBStorage(f'sqlite:///{tmp_path / "optuna.db"}')
    [study] = storage.get_all_studies()

    def states():
        return collections.Counter(t.state.name for t in storage.get_all_trials(study._study_id))

    before = states()
    assert before['WAITING'] > 0 and before['COMPLETE'] + before['PRUNED'] < 40, (
        before,
        stopped,
        log.read_text()[-3000:],
    )
    time.sleep(3)
    assert states() == before  # nothing runs on
