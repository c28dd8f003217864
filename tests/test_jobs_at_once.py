"""Jobs started at the same moment all start and finish (issue 18): 8 papermill jobs at once (six train jobs of one
model name, a cv and a tune job, as a scheduler starts them) on one fresh store; the promotion gate ends on the best
of the six whatever order they finish in. With the python3 kernel some of them died before the first cell now and then
(`zmq.error.ZMQError: Address already in use`, the kernel port race of nteract/papermill#511); the job notebooks name
the `tsforge` kernel, which connects over Unix sockets and picks no TCP port. How often the race hits is measured by
`bench/kernels_at_once.py` (hundreds of kernels), not here."""

import json, os, subprocess

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from conftest import BIN, ROOT, free_port, papermill_cmd, stop, store_client, wait_http

N, ROUNDS = 8, 1
JOBS = ('train.ipynb', 'cv.ipynb', 'tune.ipynb')


def test_job_notebooks_name_the_tsforge_kernel():
    spec = KernelSpecManager().get_kernel_spec('tsforge')  # installed by `make venv` / pip
    assert spec.metadata['kernel_provisioner']['provisioner_name'] == 'tsforge-ipc' and spec.language == 'python'
    for name in JOBS:
        ks = nbformat.read(ROOT / 'nbs' / name, as_version=4).metadata.kernelspec
        assert (ks.name, ks.language) == ('tsforge', 'python'), name


# six train jobs of the same model name, of different quality: the promotion gate must end on the best of them,
# whatever order they finish in
TRAIN = [
    ['model=naive'],
    ['model=seasonal_naive', '+model_params.period=24'],
    ['model=linear'],
    ['model=naive', 'input_length=16'],
    ['model=seasonal_naive', '+model_params.period=24', 'input_length=48'],
    ['model=linear', 'input_length=16'],
]


def jobs(round_: int) -> list[tuple[str, list[str]]]:
    "One round: six train jobs, one cv job and one tune job (its own study name, so each round searches)."
    tune = [
        f'name=tune{round_}',
        'tune.n_trials=2',
        'tune.executor=serial',
        '+tune.space.input_length={low: 16, high: 32, step: 8}',
    ]
    return [('train.ipynb', t) for t in TRAIN] + [
        ('cv.ipynb', ['model=naive', 'cv.executor=serial']),
        ('tune.ipynb', tune),
    ]


@pytest.mark.slow
def test_eight_jobs_started_at_once_all_finish(tmp_path, tiny):
    home = tmp_path / 'home'  # a fresh store, shared by every job, as on a scheduler's first day
    env = {k: v for k, v in os.environ.items() if k not in ('MLFLOW_TRACKING_URI', 'TSFORGE_OPTUNA_STORAGE')}
    env['TSFORGE_HOME'] = str(home)
    failed, started = [], 0
    for r in range(ROUNDS):
        procs = []
        try:
            for i, (nb, overrides) in enumerate(jobs(r)):
                out, log = tmp_path / f'r{r}-{i}-{nb}', open(tmp_path / f'r{r}-{i}.log', 'w')
                cmd = papermill_cmd(nb, out, 'etth1', [*tiny, *overrides])
                procs.append((nb, log, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)))
            for nb, log, p in procs:
                p.wait(timeout=1800)
                log.close()
                started += 1
                if p.returncode != 0:
                    failed.append((r, nb, open(log.name).read()[-2000:]))
        finally:
            for _, log, p in procs:
                stop(p)
                log.close()
    assert started == N * ROUNDS and not failed, json.dumps(failed, indent=1)[-6000:]
    client = store_client(home)  # tracking and registry: this process's own registry URI is the session store
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=1000, order_by=['attributes.start_time']
    )
    top = [r for r in runs if 'mlflow.parentRunId' not in r.data.tags]
    assert len(top) == N * ROUNDS and {r.info.status for r in runs} == {'FINISHED'}
    # every train job registered a version; the champion is the best of them, each version carries the gate's decision
    versions = client.search_model_versions("name='tsforge-etth1'")
    assert len(versions) == (N - 2) * ROUNDS
    champion = client.get_model_version_by_alias('tsforge-etth1', 'champion')
    mse = {v.run_id: client.get_run(v.run_id).data.metrics['test_mse'] for v in versions}
    assert mse[champion.run_id] == min(mse.values()), (champion.version, mse)
    for v in versions:
        assert v.tags['tsforge.promote.decision'] in ('promoted', 'kept') and v.tags['tsforge.promote.candidate']


def test_jupyter_server_opens_the_job_notebooks_in_the_tsforge_kernel(tmp_path):
    "As JupyterLab does: a real Jupyter server lists the kernel, starts it for nbs/train.ipynb and runs a cell in it."
    import asyncio, uuid

    import requests
    from tornado.websocket import websocket_connect

    port, token = free_port(), uuid.uuid4().hex
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'runtime'), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg')}
    proc = subprocess.Popen(
        [str(BIN / 'jupyter'), 'server', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1']
        + [
            f'--IdentityProvider.token={token}',
            f'--ServerApp.root_dir={ROOT}',
            '--ServerApp.port_retries=0',
            '--allow-root',
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, auth = f'http://127.0.0.1:{port}', {'Authorization': f'token {token}'}
    try:
        wait_http(f'{url}/api/status', proc, ok=(200, 403))
        specs = requests.get(f'{url}/api/kernelspecs', headers=auth, timeout=10).json()['kernelspecs']
        assert specs['tsforge']['spec']['display_name'] == 'Python 3 (tsforge)'
        session = {'path': 'nbs/train.ipynb', 'type': 'notebook', 'name': 'train.ipynb', 'kernel': {'name': 'tsforge'}}
        kernel = requests.post(f'{url}/api/sessions', json=session, headers=auth, timeout=120).json()['kernel']
        assert kernel['name'] == 'tsforge'

        async def run(code: str, expr: str) -> str:
            # the answer comes back in the shell channel's execute_reply (user_expressions): a fresh kernel's first
            # iopub messages (print output) can go out before the server has subscribed, so they are not relied on
            ws = await websocket_connect(f'ws://127.0.0.1:{port}/api/kernels/{kernel["id"]}/channels?token={token}')
            msg_id = uuid.uuid4().hex
            header = {'msg_id': msg_id, 'msg_type': 'execute_request', 'username': '', 'session': msg_id}
            content = {'code': code, 'silent': False, 'store_history': False, 'user_expressions': {'r': expr}}
            ws.write_message(
                json.dumps(
                    {'header': header | {'version': '5.3'}, 'parent_header': {}, 'metadata': {}, 'content': content}
                    | {'channel': 'shell'}
                )
            )
            while True:
                m = json.loads(await asyncio.wait_for(ws.read_message(), 120))
                if m['parent_header'].get('msg_id') == msg_id and m['msg_type'] == 'execute_reply':
                    ws.close()
                    return m['content']['user_expressions']['r']['data']['text/plain']

        assert asyncio.run(run('import os', 'repr((os.getcwd().endswith("nbs"), 6 * 7))')) == "'(True, 42)'"
        # the server talks to that kernel over Unix sockets: its connection file says ipc
        conn = json.loads(next((tmp_path / 'runtime').glob(f'kernel-{kernel["id"]}.json')).read_text())
        assert conn['transport'] == 'ipc' and os.path.exists(conn['ip'] + '-1')
    finally:
        stop(proc)
