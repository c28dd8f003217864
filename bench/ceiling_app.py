"""The ceiling for tsforge's request format: the least a server can do with one /predict request, as a raw ASGI app.

    CEILING_SPEC='{"time_col": "date", "columns": ["OT"], "input_length": 336, "horizon": 96, "freq_s": 3600}' \
        uvicorn --app-dir bench ceiling_app:app --host 127.0.0.1 --port 8001

Same body and answer as `POST /predict` of `tsforge.serve` ({"history": [records]} -> {"forecast": [records], "model":
{...}}): orjson parse, the time and value columns pulled out, numpy checks (timestamps parse, one step apart; values
finite), one matmul (a random linear map of the same shape as the linear model), timestamps written by numpy, orjson
out. No auth, metrics, reload, error messages or model code: it only bounds what the format allows.
"""

import json, os

import numpy as np
import orjson

SPEC = json.loads(
    os.environ.get('CEILING_SPEC')
    or '{"time_col": "date", "columns": ["OT"], "input_length": 336, "horizon": 96, "freq_s": 3600}'
)
TC, COLS, L, H = SPEC['time_col'], SPEC['columns'], SPEC['input_length'], SPEC['horizon']
STEP = np.timedelta64(int(SPEC['freq_s']), 's')
W = np.random.default_rng(0).normal(size=(L, H)) / L


async def _send(send, status, body):
    await send(
        {
            'type': 'http.response.start',
            'status': status,
            'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode())],
        }
    )
    await send({'type': 'http.response.body', 'body': body})


async def app(scope, receive, send):
    if scope['type'] == 'lifespan':
        while True:
            msg = await receive()
            await send(
                {
                    'type': msg['type']
                    .replace('.startup', '.startup.complete')
                    .replace('.shutdown', '.shutdown.complete')
                }
            )
            if msg['type'] == 'lifespan.shutdown':
                return
    if scope['path'] in ('/ready', '/health', '/ping'):
        return await _send(send, 200, b'{"status":"ready"}')
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get('body', b''))
        if not msg.get('more_body'):
            break
    try:
        hist = orjson.loads(b''.join(chunks))['history'][-L:]
        t = np.array([r[TC] for r in hist], dtype='datetime64[s]')
        x = np.array([[r[c] for c in COLS] for r in hist], dtype='float64')
        if len(t) < L or (np.diff(t) != STEP).any() or not np.isfinite(x).all():
            raise ValueError('bad history')
    except Exception as e:
        return await _send(send, 422, orjson.dumps({'detail': str(e)}))
    pred = (x.T @ W).T  # (H, C)
    times = [s.replace('T', ' ') for s in np.datetime_as_string(t[-1] + STEP * np.arange(1, H + 1), unit='s').tolist()]
    rows = [dict(zip((TC, *COLS), r)) for r in zip(times, *pred.T.tolist())]
    await _send(
        send,
        200,
        orjson.dumps({'forecast': rows, 'model': {'name': 'ceiling', 'version': None, 'run_id': None, 'uri': ''}}),
    )
