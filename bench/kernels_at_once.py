"""Start many Jupyter kernels at the same moment, each from its own process (as N papermill jobs started together do),
and count the kernels that fail to start.

    python bench/kernels_at_once.py --kernel python3 --n 16 --rounds 10   # TCP ports: the race (papermill#511)
    python bench/kernels_at_once.py --kernel tsforge --n 16 --rounds 10   # tsforge's kernel: IPC sockets, no ports

Each worker imports jupyter_client, waits for a common start time, starts the kernel, runs one cell and shuts the
kernel down; the table gives, per round, how many started and the errors of those that did not."""

import argparse, collections, json, os, subprocess, sys, time

WORKER = r"""
import json, sys, time
from jupyter_client.manager import start_new_kernel
kernel, go = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, go - time.time()))
try:
    km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=60)
    try:
        reply = kc.execute_interactive('x = 1 + 1', timeout=60)
        ok = reply['content']['status'] == 'ok'
        transport = km.transport
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print(json.dumps({'ok': ok, 'transport': transport}))
except Exception as e:
    print(json.dumps({'ok': False, 'error': f'{type(e).__module__}.{type(e).__name__}: {e}'[:200]}))
"""


def one_round(kernel: str, n: int, lead: float) -> list[dict]:
    go = time.time() + lead  # every worker has imported jupyter_client by then
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', WORKER, kernel, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        lines = [ln for ln in stdout.decode().splitlines() if ln.startswith('{')]
        res = json.loads(lines[-1]) if lines else {'ok': False, 'error': f'worker exited {p.returncode}'}
        if not res['ok'] and 'Address already in use' in stderr.decode():
            res['error'] = res.get('error', '') + ' [kernel: zmq Address already in use]'
        out.append(res)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--kernel', default='python3', help='kernelspec name (python3: TCP; tsforge: IPC)')
    ap.add_argument('--n', type=int, default=16, help='kernels started at once')
    ap.add_argument('--rounds', type=int, default=10)
    ap.add_argument('--lead', type=float, default=3.0, help='seconds between spawning the workers and the start')
    a = ap.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    total, failed, errors = 0, 0, collections.Counter()
    print(f'| round | kernels ({a.kernel}) | started | failed |')
    print('|---|---|---|---|')
    for r in range(1, a.rounds + 1):
        res = one_round(a.kernel, a.n, a.lead)
        bad = [x for x in res if not x['ok']]
        total, failed = total + len(res), failed + len(bad)
        errors.update(x.get('error', 'cell failed') for x in bad)
        print(f'| {r} | {len(res)} | {len(res) - len(bad)} | {len(bad)} |', flush=True)
    transports = sorted({x.get('transport') for x in res if x.get('transport')})
    print(f'\n{a.kernel} ({", ".join(transports) or "?"}): {failed} of {total} kernels failed to start')
    for e, k in errors.most_common():
        print(f'  {k} x {e}')


if __name__ == '__main__':
    main()
