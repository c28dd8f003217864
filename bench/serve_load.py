"""Serving throughput, side by side in one interleaved run: tsforge's server, `mlflow models serve` on the same model
URI, a minimal ceiling app for the same request format (bench/ceiling_app.py), Ray Serve through its proxy (default)
and throughput-optimised (RAY_SERVE_THROUGHPUT_OPTIMIZED=1: clients on the replicas' own ports), 1 and 2 replicas, and
the many-model route (requests spread over N registered models vs one).

    python bench/serve_load.py --model models:/tsforge-etth1@champion [--duration 8] [--warmup 2] [--rounds 2]
        [--concurrency 1 16] [--servers tsforge mlflow ceiling] [--ray 1 2] [--ray-optimized 1 2] [--multi 20]
        [--baseline-src DIR] [--bands] [--adaptive] [--covariates-model URI]

Trains nothing: it needs a registered model in the tracking store of the environment (`MLFLOW_TRACKING_URI`, else
tsforge's local store). Get one with the train job first, e.g.
`papermill nbs/train.ipynb out.ipynb -p config etth1 -y 'overrides: ["model=linear"]'`.
Request bodies are real test-set histories (input_length rows each) of the model's config.

Every server runs on 127.0.0.1 in its own process with one worker (uvicorn / mlflow) and is warmed up before each
measurement. Rounds interleave the servers (round 1: A B C, round 2: A B C), each at every concurrency: a closed loop of
keep-alive HTTP/1.1 connections (asyncio streams, one per concurrent client; a new request as soon as an answer
arrives) for `--duration` seconds after `--warmup` seconds. Reported: requests/s (mean of the rounds, and each round),
p50 / p99 latency, non-200 answers, the client's own CPU seconds per wall second (near 1.0 = the client is saturated),
cold start (process start to first 200 on the readiness route), and server RSS (the process and its children).
Ray Serve is measured after the others are stopped (its idle processes would tax them), one round, each
configuration right after a fresh plain tsforge server measured on its own ("vs plain" compares the two: on a busy
machine only ratios from neighbouring measurements mean much). With direct ingress, client k connects to replica
k mod n (what an L4 load balancer does with connections). The load average is printed at the start and the end.
`--baseline-src DIR` adds a row for an older tsforge checkout (e.g. `git archive COMMIT | tar -x -C DIR`).
`--bands` adds a row for tsforge with every request asking for the model's calibrated bands (`"levels": [80, 95]`;
"vs plain" is then the cost of the bands), `--adaptive` one with online adaptation on (`TSFORGE_ADAPTIVE=aci`) and
the same requests (each forecast is kept for scoring; no actuals are posted).
`--covariates-model URI` adds a tsforge server for a model trained with covariates (`features:`), measured in the same
rounds as the plain one: its requests are test-set histories of its own config with the covariate columns and, when
it reads future covariates, one `future` record per forecast step (see `covariate_bodies`).
"""

import argparse, asyncio, json, os, signal, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))  # bench/: also when a test loads this file as a module
from report import command  # noqa: E402  (bench/report.py: the command line as a user types it)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- client
async def _one(reader, writer, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b'\r\n\r\n')
    status = int(head[9:12])
    lines = head.lower().split(b'\r\n')
    length = next((int(l.split(b':', 1)[1]) for l in lines if l.startswith(b'content-length:')), None)
    if length is not None:
        await reader.readexactly(length)
    else:  # chunked
        while True:
            size = int((await reader.readuntil(b'\r\n')).strip().split(b';')[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def load(port, reqs: list[bytes], conc: int, warmup: float, duration: float) -> dict:
    """Closed-loop keep-alive clients; returns req/s, latency percentiles, errors and the client's CPU seconds. `port`:
    one port, or a list: client k connects to port k mod len (what an L4 load balancer does with connections)."""
    lat, errors, stop, t_measure = [], 0, False, None
    ports = port if isinstance(port, list) else [port]

    async def worker(k):
        nonlocal errors
        port = ports[k % len(ports)]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        i = k
        try:
            while not stop:
                t0 = time.perf_counter()
                try:
                    status = await _one(reader, writer, reqs[i % len(reqs)])
                except (asyncio.IncompleteReadError, ConnectionError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection('127.0.0.1', port)
                t1 = time.perf_counter()
                if t_measure is not None and t0 >= t_measure and not stop:
                    lat.append(t1 - t0)
                    errors += status != 200
                i += conc
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker(k)) for k in range(conc)]
    await asyncio.sleep(warmup)
    t_measure, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(duration)
    stop, wall, cpu = True, time.perf_counter() - t_measure, time.process_time() - cpu0
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = np.array(lat) * 1000 if lat else np.array([np.nan])
    return {
        'rps': len(lat) / wall,
        'p50': float(np.percentile(ms, 50)),
        'p99': float(np.percentile(ms, 99)),
        'n': len(lat),
        'errors': errors,
        'client_cpu': cpu / wall,
    }


def http_request(path: str, body: bytes, headers: dict | None = None) -> bytes:
    h = {'Host': '127.0.0.1', 'Content-Type': 'application/json', 'Content-Length': str(len(body)), **(headers or {})}
    return (f'POST {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in h.items()) + '\r\n').encode() + body


# ---------------------------------------------------------------- servers
class Proc:
    "A server in a child process: started, waited for, measured (RSS of the process tree), stopped."

    def __init__(self, name, cmd, env, ready_path, port, path, make_body, cwd=ROOT):
        self.name, self.cmd, self.env, self.ready_path, self.port, self.path, self.make_body = (
            name,
            cmd,
            env,
            ready_path,
            port,
            path,
            make_body,
        )
        self.cwd = cwd
        self.proc, self.cold = None, None
        self.ports = None  # where clients send requests (default: [port]); direct ingress: the replicas' own ports
        self.endpoints_file = None

    def start(self, timeout=300):
        t0 = time.time()
        self.proc = subprocess.Popen(
            self.cmd,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f'{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}')
                try:
                    with urllib.request.urlopen(f'http://127.0.0.1:{self.port}{self.ready_path}', timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    pass
                if time.time() - t0 > timeout:
                    raise TimeoutError(f'{self.name} not ready after {timeout}s')
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise  # never leave a server behind
        if self.endpoints_file:  # Ray Serve with direct ingress: the child writes its replicas' addresses
            while not os.path.exists(self.endpoints_file) and time.time() - t0 < timeout:
                time.sleep(0.1)
            urls = json.loads(Path(self.endpoints_file).read_text())
            self.ports = [int(u.rsplit(':', 1)[1]) for u in urls]
            for port in self.ports:
                while True:
                    try:
                        with urllib.request.urlopen(f'http://127.0.0.1:{port}{self.ready_path}', timeout=2) as r:
                            if r.status == 200:
                                break
                    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                        time.sleep(0.1)
        self.cold = time.time() - t0
        return self

    def rss_mb(self) -> float:
        try:
            p = psutil.Process(self.proc.pid)
            return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20
        except psutil.NoSuchProcess:
            return float('nan')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ray_child(a):
    """Run Ray Serve with the tsforge app (loopback only) until SIGINT/SIGTERM; `--ray-optimized`: Ray's
    throughput-optimised mode (direct ingress), the replicas' addresses written to `--endpoints-file`."""
    os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')
    # a busy machine: Ray's agents may take longer than Ray's start-up deadlines (15 s); the raylet then aborts
    os.environ.setdefault('RAY_agent_register_timeout_ms', '120000')
    os.environ.setdefault('RAY_raylet_start_wait_time_s', '120')
    if a.ray_child_optimized:
        os.environ['RAY_SERVE_THROUGHPUT_OPTIMIZED'] = '1'  # before Ray starts: its processes inherit it
    import ray
    from ray import serve
    from tsforge.ray_serve import ray_app, replica_endpoints
    from tsforge.store import tracking_uri

    import tempfile

    tmp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # a Ray of its own (short: Ray's socket paths live under it)
    ray.init(
        address='local',
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        _node_ip_address='127.0.0.1',
        log_to_driver=False,
        _temp_dir=tmp,
    )
    serve.start(http_options={'host': '127.0.0.1', 'port': a.port})
    n = a.ray_child
    serve.run(
        ray_app(
            {
                'model': a.model,
                'num_replicas': n,
                'num_cpus': min(1.0, os.cpu_count() / (n + 1)),
                'tracking_uri': tracking_uri(),
            }
        ),
        name='tsforge',
        route_prefix='/',
    )
    if a.endpoints_file:
        t0 = time.time()
        while len(urls := replica_endpoints('tsforge')) < n and time.time() - t0 < 120:
            time.sleep(0.2)
        tmp = a.endpoints_file + '.tmp'
        Path(tmp).write_text(json.dumps(urls))
        os.replace(tmp, a.endpoints_file)
    done = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.append(1))
    while not done:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='models:/tsforge-etth1@champion')
    ap.add_argument(
        '--config', default=None, help="experiment whose test set gives the request bodies (default: the model's own)"
    )
    ap.add_argument('--duration', type=float, default=8)
    ap.add_argument('--warmup', type=float, default=2)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--concurrency', type=int, nargs='+', default=[1, 16])
    ap.add_argument('--servers', nargs='+', default=['tsforge', 'mlflow', 'ceiling'])
    ap.add_argument(
        '--ray', type=int, nargs='*', default=[1, 2], help='Ray Serve replica counts to measure (none: skip)'
    )
    ap.add_argument('--baseline-src', default=None)
    ap.add_argument('--port', type=int, default=None)
    ap.add_argument(
        '--ray-optimized',
        type=int,
        nargs='*',
        default=[1, 2],
        help="replica counts to measure with RAY_SERVE_THROUGHPUT_OPTIMIZED=1, clients on the replicas' own ports",
    )
    ap.add_argument(
        '--multi',
        type=int,
        default=0,
        help='also measure POST /models/NAME/predict with requests spread over this many registered models '
        "(bench-multi-NN, registered from the model's own artifacts when missing) vs one model",
    )
    ap.add_argument(
        '--bands',
        action='store_true',
        help="also measure tsforge with every request asking for the model's calibrated bands (levels), vs plain",
    )
    ap.add_argument(
        '--adaptive',
        action='store_true',
        help='also measure tsforge with online adaptation on (TSFORGE_ADAPTIVE=aci), requests asking for bands',
    )
    ap.add_argument('--covariates-model', default=None, help='also serve this model trained with covariates')
    ap.add_argument('--ray-child', type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument('--endpoints-file', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--ray-child-optimized', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ray_child:
        return ray_child(a)

    import orjson
    from tsforge import bundle, store
    from tsforge.config import load_config
    from tsforge.prepare import prepare

    env = {
        'MLFLOW_TRACKING_URI': store.tracking_uri(),
        'TSFORGE_MODEL': a.model,
        'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'),
    }
    model = bundle.load_model(a.model)
    info = bundle.resolve(a.model)
    st = model.state
    cfg = load_config(
        a.config or model.config['name'],
        [f'{k}={v}' for k, v in (('mode', model.config.get('mode')),) if v and not a.config],
    )
    prep = prepare(cfg)
    L, tc, cols = st.input_length, st.time_col, [st.time_col, *st.columns_in]
    origins = prep.origins('test')
    hists = []
    for o in origins[np.linspace(0, len(origins) - 1, 64).astype(int)]:
        h = prep.frame.iloc[o - L : o][cols].copy()
        h[tc] = h[tc].astype(str)
        hists.append(h)
    tsforge_bodies = [orjson.dumps({'history': h.to_dict(orient='records')}) for h in hists]
    if (a.bands or a.adaptive) and not model.levels:
        raise SystemExit(f'--bands / --adaptive: {a.model} has no calibrated interval levels')
    band_bodies = [orjson.dumps({'history': h.to_dict(orient='records'), 'levels': model.levels}) for h in hists]
    mlflow_bodies = [orjson.dumps({'dataframe_split': h.to_dict(orient='split', index=False)}) for h in hists]
    from pandas.tseries.frequencies import to_offset

    spec = json.dumps(
        {
            'time_col': tc,
            'columns': st.columns_in,
            'input_length': L,
            'horizon': st.horizon,
            'freq_s': to_offset(st.freq).nanos // 10**9,
        }
    )
    py, uv = sys.executable, [sys.executable, '-m', 'uvicorn', '--host', '127.0.0.1', '--log-level', 'warning']

    def make(name):
        port = free_port()
        if name == 'tsforge':
            return Proc(
                'tsforge',
                [*uv, '--port', str(port), 'tsforge.serve:app'],
                {**env, 'PYTHONPATH': str(ROOT)},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
            )
        if name == 'baseline':
            return Proc(
                'tsforge baseline',
                [*uv, '--port', str(port), 'tsforge.serve:app'],
                {**env, 'PYTHONPATH': a.baseline_src},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
                cwd=a.baseline_src,
            )
        if name in ('bands', 'adaptive'):  # the cost of the bands, and of online adaptation on top
            on = {'TSFORGE_ADAPTIVE': 'aci'} if name == 'adaptive' else {}
            lv = ', '.join(f'{v:g}' for v in model.levels)
            return Proc(
                f'tsforge, levels [{lv}]' + (', TSFORGE_ADAPTIVE=aci' if on else ''),
                [*uv, '--port', str(port), 'tsforge.serve:app'],
                {**env, 'PYTHONPATH': str(ROOT), **on},
                '/ready',
                port,
                '/predict',
                band_bodies,
            )
        if name == 'mlflow':
            return Proc(
                'mlflow models serve',
                [
                    py,
                    '-m',
                    'mlflow',
                    'models',
                    'serve',
                    '-m',
                    a.model,
                    '--env-manager',
                    'local',
                    '-h',
                    '127.0.0.1',
                    '-p',
                    str(port),
                    '-w',
                    '1',
                ],
                {**env, 'PYTHONPATH': str(ROOT)},
                '/ping',
                port,
                '/invocations',
                mlflow_bodies,
            )
        if name == 'ceiling':
            return Proc(
                'ceiling (bench/ceiling_app.py)',
                [*uv, '--port', str(port), '--app-dir', 'bench', 'ceiling_app:app'],
                {'CEILING_SPEC': spec},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
            )
        if name == 'covariates':
            return covariates_proc(a.covariates_model, env, uv, port)
        if name.startswith('multi'):  # the many-model route: one model, or requests spread over a.multi models
            k = int(name[5:])
            p = Proc(
                f'tsforge, /models/NAME/predict, {k} model{"s" * (k > 1)}',
                [*uv, '--port', str(port), 'tsforge.serve:app'],
                {**env, 'PYTHONPATH': str(ROOT), 'TSFORGE_MODEL_CACHE_SIZE': str(max(k, 8))},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
            )
            p.paths = [f'/models/{multi_names[i]}/predict' for i in range(k)]
            return p
        if name.startswith('ray'):
            opt = name.startswith('rayopt')
            n = int(name[6:] if opt else name[3:])
            cmd = [py, str(Path(__file__).resolve()), '--model', a.model, '--ray-child', str(n), '--port', str(port)]
            ef = None
            if opt:
                ef = str(Path(tmpdir) / f'endpoints-{n}.json')
                cmd += ['--ray-child-optimized', '--endpoints-file', ef]
            p = Proc(
                f'Ray Serve {"optimised (direct ingress)" if opt else "default (proxy)"}, {n} replica{"s" * (n > 1)}',
                cmd,
                {**env, 'PYTHONPATH': str(ROOT), 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0', 'RAY_AUTH_MODE': 'disabled'},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
            )
            p.endpoints_file = ef
            return p
        raise ValueError(name)

    import tempfile

    tmpdir = tempfile.mkdtemp(prefix='serve_load')
    multi_names = []
    if a.multi:  # register the model's own artifacts under a.multi names (once): no training
        from mlflow import MlflowClient

        client, src = MlflowClient(), client_source(a.model)
        for i in range(a.multi):
            nm = f'bench-multi-{i:02d}'
            multi_names.append(nm)
            try:
                client.get_model_version_by_alias(nm, 'champion')
            except Exception:
                from tsforge import registry

                v = registry.register(src, nm)
                registry.set_alias(nm, 'champion', v)
    names = [
        *a.servers,
        *(['baseline'] if a.baseline_src else []),
        *(['bands'] if a.bands else []),
        *(['adaptive'] if a.adaptive else []),
        *(['multi1', f'multi{a.multi}'] if a.multi else []),
        *(['covariates'] if a.covariates_model else []),
    ]
    results, procs, adjacent = {}, {}, {}
    cmd = command('bench/serve_load.py')
    print(
        f'`{cmd}`\n{os.cpu_count()} CPUs, load average {" / ".join(f"{x:.1f}" for x in os.getloadavg())} at the start; '
        f'model {a.model} = {model.model.name} v{info.get("version")}, L={L}, H={st.horizon}, '
        f'{len(st.columns_in)} input column(s); warm-up {a.warmup}s, {a.duration}s per measurement\n',
        flush=True,
    )

    def measure(p, rounds, key=None):
        for c in a.concurrency:
            paths = getattr(p, 'paths', None) or [p.path]
            reqs = [http_request(paths[i % len(paths)], b) for i, b in enumerate(p.make_body)]
            r = asyncio.run(load(p.ports or p.port, reqs, c, a.warmup, a.duration))
            r['rss'] = p.rss_mb()
            results.setdefault((key or p.name, c), []).append(r)
            print(
                f'  {key or p.name} c={c}: {r["rps"]:.0f} req/s p50 {r["p50"]:.2f} ms p99 {r["p99"]:.2f} ms '
                f'errors {r["errors"]} client cpu {r["client_cpu"]:.2f} load {os.getloadavg()[0]:.1f}',
                file=sys.stderr,
                flush=True,
            )

    try:
        for n in names:
            procs[n] = make(n).start()
        for rnd in range(a.rounds):
            for n in names:
                measure(procs[n], rnd)
    finally:
        for p in procs.values():
            p.stop()
    # Ray Serve runs after the others stopped (its idle processes would tax them); each configuration is paired with
    # a fresh plain tsforge server measured just before it, so that its ratio compares like with like on a busy machine
    rays = [*[f'ray{n}' for n in a.ray or []], *[f'rayopt{n}' for n in a.ray_optimized or []]]
    for n in rays:
        plain = make('tsforge')
        try:
            plain.start()
            key = f'tsforge (paired with {n})'
            measure(plain, 0, key)
            adjacent[n] = key
        finally:
            plain.stop()
        p = make(n)
        try:
            procs[n] = p.start()
            measure(p, 0)
        finally:
            p.stop()
    print(f'load average {" / ".join(f"{x:.1f}" for x in os.getloadavg())} at the end\n', flush=True)

    def mean_of(name, c, k='rps'):
        rs = results.get((name, c), [])
        return np.mean([r[k] for r in rs]) if rs else None

    ceiling_name = procs['ceiling'].name if 'ceiling' in procs else None
    mlflow_name = procs['mlflow'].name if 'mlflow' in procs else None
    plain_name = procs['tsforge'].name if 'tsforge' in procs else None
    print(
        '| server | conc | req/s (rounds) | p50 ms | p99 ms | errors | vs plain | p50 - plain ms | vs ceiling '
        '| vs mlflow | client CPU s/s | cold start s | RSS MB |'
    )
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for n in [*names, *rays]:
        if n not in procs:
            continue
        p = procs[n]
        for c in a.concurrency:
            rs = results.get((p.name, c), [])
            if not rs:
                continue
            rps, p50 = np.mean([r['rps'] for r in rs]), np.mean([r['p50'] for r in rs])
            ref = adjacent.get(n, plain_name)
            ref_rps, ref_p50 = (mean_of(ref, c), mean_of(ref, c, 'p50')) if ref and n != 'tsforge' else (None, None)
            vs_p = f'{rps / ref_rps:.0%}' if ref_rps else ''
            d50 = f'{p50 - ref_p50:+.2f}' if ref_p50 is not None else ''
            cr, mr = mean_of(ceiling_name, c), mean_of(mlflow_name, c)
            vs_c = f'{rps / cr:.0%}' if cr else ''
            vs_m = f'{rps / mr:.1f}x' if mr else ''
            each = ' / '.join(f'{r["rps"]:.0f}' for r in rs)
            print(
                f'| {p.name} | {c} | {rps:.0f} ({each}) | {p50:.2f} | {np.mean([r["p99"] for r in rs]):.2f} | '
                f'{sum(r["errors"] for r in rs)} | {vs_p} | {d50} | {vs_c} | {vs_m} | '
                f'{max(r["client_cpu"] for r in rs):.2f} | {p.cold:.1f} | {max(r["rss"] for r in rs):.0f} |'
            )
    for n in rays:
        key = adjacent[n]
        for c in a.concurrency:
            rs = results.get((key, c), [])
            if rs:
                print(
                    f'| {key} | {c} | {rs[0]["rps"]:.0f} | {rs[0]["p50"]:.2f} | {rs[0]["p99"]:.2f} | {rs[0]["errors"]} '
                    f'| 100% | | | | {rs[0]["client_cpu"]:.2f} | | {rs[0]["rss"]:.0f} |'
                )


def covariate_bodies(uri: str, n: int = 64) -> list[bytes]:
    """`n` request bodies for the model at `uri` (trained with `features:`): test-set histories of its own config
    (input_length records with the time column, the inputs and the future and past covariate columns) and, when it
    reads future covariates, `future`: one record per forecast step with the time column and those covariates."""
    import orjson
    from tsforge import bundle
    from tsforge.config import validate_config
    from tsforge.prepare import prepare

    m = bundle.load_model(uri)
    st, fs = m.state, m.state.feature_state
    prep = prepare(validate_config(m.config))
    L, H, tc = st.input_length, st.horizon, st.time_col
    cols = list(dict.fromkeys([tc, *st.columns_in, *(fs.future + fs.past if fs else [])]))
    origins = prep.origins('test')
    out = []
    for o in origins[np.linspace(0, len(origins) - 1, n).astype(int)]:
        h = prep.frame.iloc[o - L : o][cols].copy()
        h[tc] = h[tc].astype(str)
        body = {'history': h.to_dict(orient='records')}
        if fs is not None and fs.future:
            f = prep.frame.iloc[o : o + H][[tc, *fs.future]].copy()
            f[tc] = f[tc].astype(str)
            body['future'] = f.to_dict(orient='records')
        out.append(orjson.dumps(body))
    return out


def covariates_proc(uri: str, env: dict, uv: list, port: int) -> Proc:
    "A tsforge server for the covariates model `uri`, with its own request bodies (`covariate_bodies`)."
    from tsforge import bundle

    m = bundle.load_model(uri)
    fs = m.state.feature_state
    what = ', '.join(fs.known_names + fs.past) if fs else 'none'
    return Proc(
        f'tsforge, covariates model ({what})',
        [*uv, '--port', str(port), 'tsforge.serve:app'],
        {**env, 'TSFORGE_MODEL': uri, 'PYTHONPATH': str(ROOT)},
        '/ready',
        port,
        '/predict',
        covariate_bodies(uri),
    )


def client_source(uri: str) -> str:
    "The artifact source of a registered model version (what registering it again under another name needs)."
    from tsforge import bundle
    from mlflow import MlflowClient

    info = bundle.resolve(uri)
    return MlflowClient().get_model_version(info['name'], info['version']).source


if __name__ == '__main__':
    main()
