"""Serving throughput, side by side in one interleaved run: tsforge's server, `mlflow models serve` on the same model
URI, a minimal ceiling app for the same request format (bench/ceiling_app.py), and Ray Serve (1 and 2 replicas).

    python bench/serve_load.py --model models:/tsforge-etth1@champion [--duration 8] [--warmup 2] [--rounds 2]
        [--concurrency 1 16] [--servers tsforge mlflow ceiling] [--ray 1 2] [--baseline-src DIR]

Trains nothing: it needs a registered model in the tracking store of the environment (`MLFLOW_TRACKING_URI`, else
tsforge's local store). Get one with the train job first, e.g.
`papermill nbs/train.ipynb /tmp/train-out.ipynb -p config etth1 -y 'overrides: ["model=linear"]'`.
Request bodies are real test-set histories (input_length rows each) of the model's config.

Every server runs on 127.0.0.1 in its own process with one worker (uvicorn / mlflow) and is warmed up before each
measurement. Rounds interleave the servers (round 1: A B C, round 2: A B C), each at every concurrency: a closed loop of
keep-alive HTTP/1.1 connections (asyncio streams, one per concurrent client; a new request as soon as an answer
arrives) for `--duration` seconds after `--warmup` seconds. Reported: requests/s (mean of the rounds, and each round),
p50 / p99 latency, non-200 answers, the client's own CPU seconds per wall second (near 1.0 = the client is saturated),
cold start (process start to first 200 on the readiness route), and server RSS (the process and its children).
Ray Serve is measured after the others are stopped (its idle processes would tax them), one round.
`--baseline-src DIR` adds a row for an older tsforge checkout (e.g. `git archive COMMIT | tar -x -C DIR`).
"""

import argparse, asyncio, json, os, shlex, signal, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

import numpy as np
import psutil

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


async def load(port: int, reqs: list[bytes], conc: int, warmup: float, duration: float) -> dict:
    "Closed-loop keep-alive clients; returns req/s, latency percentiles, errors and the client's CPU seconds."
    lat, errors, stop, t_measure = [], 0, False, None

    async def worker(k):
        nonlocal errors
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
    "Run Ray Serve with the tsforge app (loopback only) until SIGINT/SIGTERM."
    os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')
    import ray
    from ray import serve
    from tsforge.serve import ray_app
    from tsforge.tracking import tracking_uri

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address='127.0.0.1', log_to_driver=False)
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
    done = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.append(1))
    while not done:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


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
    ap.add_argument('--ray-child', type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ray_child:
        return ray_child(a)

    import orjson
    from tsforge import tracking
    from tsforge.config import load_config
    from tsforge.pipeline import prepare

    env = {
        'MLFLOW_TRACKING_URI': tracking.tracking_uri(),
        'TSFORGE_MODEL': a.model,
        'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'),
    }
    model = tracking.load_model(a.model)
    info = tracking.resolve(a.model)
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
        if name.startswith('ray'):
            n = int(name[3:])
            return Proc(
                f'Ray Serve, {n} replica{"s" * (n > 1)}',
                [py, str(Path(__file__).resolve()), '--model', a.model, '--ray-child', str(n), '--port', str(port)],
                {**env, 'PYTHONPATH': str(ROOT), 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0', 'RAY_AUTH_MODE': 'disabled'},
                '/ready',
                port,
                '/predict',
                tsforge_bodies,
            )
        raise ValueError(name)

    names = [*a.servers, *(['baseline'] if a.baseline_src else [])]
    results, procs = {}, {}
    cmd = 'python bench/serve_load.py ' + shlex.join(sys.argv[1:])
    print(
        f'`{cmd}`\n{os.cpu_count()} CPUs; model {a.model} = {model.model.name} v{info.get("version")}, '
        f'L={L}, H={st.horizon}, '
        f'{len(st.columns_in)} input column(s); warm-up {a.warmup}s, {a.duration}s per measurement\n',
        flush=True,
    )

    def measure(p, rounds):
        for c in a.concurrency:
            reqs = [http_request(p.path, b) for b in p.make_body]
            r = asyncio.run(load(p.port, reqs, c, a.warmup, a.duration))
            r['rss'] = p.rss_mb()
            results.setdefault((p.name, c), []).append(r)
            print(
                f'  {p.name} c={c}: {r["rps"]:.0f} req/s p50 {r["p50"]:.2f} ms p99 {r["p99"]:.2f} ms '
                f'errors {r["errors"]} '
                f'client cpu {r["client_cpu"]:.2f}',
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
    for n in a.ray or []:
        p = make(f'ray{n}')
        try:
            procs[f'ray{n}'] = p.start()
            measure(p, 0)
        finally:
            p.stop()

    order = [procs[n].name for n in [*names, *[f'ray{n}' for n in a.ray or []]] if n in procs]
    ceiling = (
        {c: np.mean([r['rps'] for r in results[(procs['ceiling'].name, c)]]) for c in a.concurrency}
        if 'ceiling' in procs
        else {}
    )
    mlf = (
        {c: np.mean([r['rps'] for r in results[(procs['mlflow'].name, c)]]) for c in a.concurrency}
        if 'mlflow' in procs
        else {}
    )
    print(
        '| server | conc | req/s (rounds) | p50 ms | p99 ms | errors | vs ceiling | vs mlflow | client CPU s/s '
        '| cold start s | RSS MB |'
    )
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name in order:
        p = next(q for q in procs.values() if q.name == name)
        for c in a.concurrency:
            rs = results.get((name, c), [])
            if not rs:
                continue
            rps = np.mean([r['rps'] for r in rs])
            vs_c = f'{rps / ceiling[c]:.0%}' if c in ceiling else ''
            vs_m = f'{rps / mlf[c]:.1f}x' if c in mlf else ''
            each = ' / '.join(f'{r["rps"]:.0f}' for r in rs)
            print(
                f'| {name} | {c} | {rps:.0f} ({each}) | {np.mean([r["p50"] for r in rs]):.2f} | '
                f'{np.mean([r["p99"] for r in rs]):.2f} | {sum(r["errors"] for r in rs)} | {vs_c} | {vs_m} | '
                f'{max(r["client_cpu"] for r in rs):.2f} | {p.cold:.1f} | {max(r["rss"] for r in rs):.0f} |'
            )


if __name__ == '__main__':
    main()
