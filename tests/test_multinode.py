"""The whole deployment layout on a simulated cluster on one machine: a Ray cluster of two nodes (a head and a worker,
each one CPU, every listener on 127.0.0.1), an MLflow server on a real PostgreSQL (pgserver) with proxied artifacts,
Optuna's study storage on the same PostgreSQL. The cv and tune jobs connect through `RAY_ADDRESS` and their tasks run
on both nodes (each fold's and trial's run is tagged with its Ray node); the train job registers through the server;
Ray Serve replicas on both nodes, throughput-optimised (`RAY_SERVE_THROUGHPUT_OPTIMIZED=1`: each replica answers HTTP
on a loopback port of its own, as well as behind Ray's proxy), and a plain server load the model through the tracking
server only: the nodes and the plain server run in an empty working directory with no store path and no MLflow
setting of the test's.

Run as a script (`python tests/test_multinode.py`), this file is the cluster: the test starts it in its own process
group, and everything Ray starts (GCS, raylets, agents, workers, Serve actors) descends from it."""

import json, os, shutil, signal, subprocess, sys, tempfile, time

import pytest

if __name__ != '__main__':  # the test (the cluster's process imports none of this)
    import requests

    from conftest import ROOT, children, column, free_port, history_body, papermill, papermill_cmd, parent_runs
    from conftest import pg_database, stop, uvicorn_cmd, wait_http
    from test_ray_serve import non_loopback_listeners

pytestmark = pytest.mark.slow

JOB = ['model=linear', 'input_length=96', 'horizon=24']
# cv and tune folds that take seconds each (linear on the 7 columns, L=336, H=96): a task must outlast the start of
# a Ray worker on the other node, or the first node's worker, reused, would run every fold before the other starts
FOLDS = ['model=linear', 'mode=M', 'input_length=336', 'horizon=96']


def _main():
    "The cluster: a head and one more node on 127.0.0.1, one CPU each; prints READY, then waits for SIGTERM."
    os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'  # every listener on loopback (the node IP is 127.0.0.1)
    import psutil
    from ray.cluster_utils import Cluster

    # On a busy machine a raylet can give up waiting for its dashboard agent (a Python process) and abort ("Timed out
    # waiting for file .../metrics_agent_port_..."); Ray waits 30 s for a raylet (hard-coded). Start again then.
    for attempt in range(3):
        try:
            cluster = Cluster(initialize_head=True, head_node_args={'num_cpus': 1, 'include_dashboard': False})
            node = cluster.add_node(num_cpus=1)
            break
        except Exception as e:
            print(f'cluster start {attempt + 1} failed: {e}', file=sys.stderr, flush=True)
            for p in psutil.Process().children(recursive=True):
                p.kill()
    else:
        sys.exit(1)

    def bye(*_):
        cluster.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    print('READY', cluster.address, cluster.head_node.node_id, node.node_id, flush=True)
    while True:
        time.sleep(3600)


def _serve(address, port, tracking_uri, model):
    "Deploy two Ray Serve replicas of `model` on the cluster, then print the node of each replica (Serve stays up)."
    import ray
    from ray import serve

    from tsforge.ray_serve import ray_app, replica_endpoints

    ray.init(address=address)
    serve.start(proxy_location='HeadOnly', http_options={'host': '127.0.0.1', 'port': int(port)})
    args = {'model': model, 'num_replicas': 2, 'num_cpus': 1, 'tracking_uri': tracking_uri}
    serve.run(ray_app(args), name='tsforge', route_prefix='/')
    alive = [a for a in ray._private.state.actors().values() if a['State'] == 'ALIVE']
    replicas = [a['Address']['NodeID'] for a in alive if 'ServeReplica' in a['ActorClassName']]
    t0 = time.time()
    while len(urls := replica_endpoints('tsforge')) < 2 and time.time() - t0 < 120:
        time.sleep(0.2)
    print('REPLICAS', json.dumps({'nodes': replicas, 'endpoints': urls}), flush=True)


def _clean_env(**extra):
    """The environment of a machine that has tsforge installed and nothing of this test's store (no TSFORGE_*,
    MLFLOW_*), where Ray runs throughput-optimised (the variable is read where Ray's processes start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('TSFORGE_', 'MLFLOW_', 'RAY_ADDRESS'))}
    return {**env, 'PYTHONPATH': str(ROOT), 'RAY_AUTH_MODE': 'disabled', 'RAY_SERVE_THROUGHPUT_OPTIMIZED': '1', **extra}


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    "The two-node cluster in its own process group and temp dir; afterwards no process of it is left."
    elsewhere = tmp_path_factory.mktemp('node-cwd')  # an empty working directory
    tmp = tempfile.mkdtemp(prefix='rc', dir='/tmp')  # short: Ray's socket paths live under it
    proc = subprocess.Popen(
        [sys.executable, __file__],
        cwd=elsewhere,
        env=_clean_env(RAY_TMPDIR=tmp),  # Ray's session dirs and its "current cluster" file, not the machine's
        stdout=subprocess.PIPE,
        stderr=open(elsewhere.parent / 'cluster.err', 'w'),
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()  # blocks until READY (or the launcher died)
        err = (elsewhere.parent / 'cluster.err').read_text()[-3000:]
        assert line.startswith('READY'), f'the cluster did not start (exit {proc.poll()}): {err}'
        _, address, head, worker = line.split()
        yield {'address': address, 'nodes': {head, worker}, 'pid': proc.pid, 'cwd': elsewhere}
    finally:
        proc.send_signal(signal.SIGTERM)  # Cluster.shutdown(): every node's processes
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        proc.wait()
        left = _processes(proc.pid, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f'cluster processes left running: {left}'


def _processes(pgid, tmp):
    "Processes of process group `pgid`, or whose command line names the cluster's temp dir (GCS, raylets, workers)."
    import psutil

    time.sleep(1)
    out = []
    for p in psutil.process_iter(['pid', 'cmdline', 'status']):
        try:
            if p.info['status'] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(p.pid) == pgid or tmp in ' '.join(p.info['cmdline'] or ()):
                out.append((p.pid, ' '.join(p.info['cmdline'] or ())[:120]))
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    return out


def test_jobs_and_serving_on_a_two_node_cluster(cluster, mlflow_pg, postgres, tmp_path):
    from mlflow import MlflowClient

    url, artifacts = mlflow_pg.url, mlflow_pg.artifacts
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    env = {
        'MLFLOW_TRACKING_URI': url,
        'RAY_ADDRESS': cluster['address'],
        'RAY_AUTH_MODE': 'disabled',
        'TSFORGE_OPTUNA_STORAGE': pg_database(postgres),
    }

    # train (no Ray) runs beside cv and tune: it registers through the server (below)
    log = open(tmp_path / 'train.log', 'w')
    cmd = papermill_cmd('train.ipynb', tmp_path / 'train.ipynb', 'etth1', JOB + ['registry.model_name=mn-model'])
    train = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)

    # cv: four folds as Ray tasks, two at a time (one CPU per node): both nodes compute folds
    r = papermill(
        'cv.ipynb',
        tmp_path / 'cv.ipynb',
        'etth1',
        FOLDS + ['cv.n_windows=4', 'cv.executor=ray', 'cv.n_jobs=2'],
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    folds = children(parent_runs('cv', client=client)[0].info.run_id, client=client)
    assert len(folds) == 4
    assert {f.data.tags.get('tsforge.ray_node') for f in folds} == cluster['nodes']

    # tune: two Ray workers (one per node) share four trials through the PostgreSQL study storage
    tune = FOLDS + [
        'cv.n_windows=2',
        'cv.horizon=240',
        'cv.step=240',
        'tune.executor=ray',
        'tune.n_workers=2',
        'tune.n_trials=4',
        'tune.retrain=false',
        'tune.pruner=none',
        '+tune.space.model_params.alpha={low: 0.001, high: 10.0, log: true}',
    ]
    r = papermill('tune.ipynb', tmp_path / 'tune.ipynb', 'etth1', tune, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run = parent_runs('tune', client=client)[0]
    assert run.data.tags['tune.storage'].startswith('postgresql')
    trials = children(run.info.run_id, client=client)
    assert len(trials) == 4
    assert {t.data.tags.get('tsforge.ray_node') for t in trials} == cluster['nodes']

    # train: registers through the server (its backend a bare postgresql:// URL, as users write it); the run and the
    # version live in PostgreSQL, the artifacts (the bundle, the executed notebook) where only the server looks
    assert mlflow_pg.backend.startswith('postgresql://') and '+' not in mlflow_pg.backend.split('://')[0]
    try:
        train.wait(timeout=600)
    finally:
        stop(train)
        log.close()
    assert train.returncode == 0, (tmp_path / 'train.log').read_text()[-3000:]
    mv = client.get_model_version_by_alias('mn-model', 'champion')
    run = client.get_run(mv.run_id)
    assert run.info.status == 'FINISHED' and run.info.artifact_uri.startswith('mlflow-artifacts:')
    assert {'notebook', 'predictions.parquet'} <= {f.path for f in client.list_artifacts(mv.run_id)}
    assert any(artifacts.rglob('MLmodel'))
    assert mv.run_id in column(mlflow_pg.backend, 'SELECT run_uuid FROM runs')
    assert 'mn-model' in column(mlflow_pg.backend, 'SELECT name FROM model_versions')
    model, body = 'models:/mn-model@champion', history_body()

    # Ray Serve: one replica per node, loading through the tracking server (the nodes have no store path)
    port = free_port()
    s = subprocess.run(
        [sys.executable, __file__, 'serve', cluster['address'], str(port), url, model],
        cwd=cluster['cwd'],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert s.returncode == 0, s.stderr[-3000:]
    replicas = json.loads(s.stdout.split('REPLICAS', 1)[1])
    assert sorted(replicas['nodes']) == sorted(cluster['nodes'])
    proxied = []
    for _ in range(6):  # the proxy spreads requests over both replicas
        a = requests.post(f'http://127.0.0.1:{port}/predict', json=body, timeout=60)
        assert a.status_code == 200, a.text
        assert a.json()['model']['version'] == mv.version and len(a.json()['forecast']) == 24
        proxied.append(a.json()['forecast'])
    # direct ingress: each replica answers on a loopback port of its own, as the proxy does
    urls = replicas['endpoints']
    assert len(urls) == 2 and len(set(urls)) == 2, urls
    for u in urls:
        host, p = u.removeprefix('http://').rsplit(':', 1)
        assert host == '127.0.0.1' and 30000 <= int(p) <= 31000, u
        assert requests.get(f'{u}/ready', timeout=30).status_code == 200
        r = requests.post(f'{u}/predict', json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()['forecast'] == proxied[0] and r.headers['x-tsforge-model-version'] == mv.version
    assert non_loopback_listeners(cluster['pid']) == []

    # a plain server, started elsewhere with only MLFLOW_TRACKING_URI
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port), cwd=cluster['cwd'], env=_clean_env(MLFLOW_TRACKING_URI=url, TSFORGE_MODEL=model)
    )
    try:
        wait_http(f'http://127.0.0.1:{port}/ready', proc, timeout=180)
        a = requests.post(f'http://127.0.0.1:{port}/predict', json=body, timeout=60)
        assert a.status_code == 200, a.text
        assert a.json()['model']['version'] == mv.version
    finally:
        stop(proc)


if __name__ == '__main__':
    if sys.argv[1:2] == ['serve']:
        _serve(*sys.argv[2:])
    else:
        _main()
