"""Fuzzing a real uvicorn: schemathesis against the live OpenAPI schema (fixed seed), a mutation fuzzer over valid
requests, and the worst body shapes within the size limit (memory and latency bounded; figures printed)."""

import json, random, threading, time

import numpy as np
import psutil
import pytest
import requests

from conftest import ROOT, uvicorn
from test_serve_prod import FRAME, body, log_version
from tsforge import registry


L, H = 4, 2  # a short window: generated histories (at least L records) stay cheap to generate


@pytest.fixture(scope='module')
def fuzz_server(store):
    v, _ = log_version('serve-fuzz', L=L, H=H)
    registry.set_alias('serve-fuzz', 'champion', v)
    with uvicorn(
        'models:/serve-fuzz@champion', {'TSFORGE_MAX_ROWS': '5000', 'TSFORGE_MAX_BODY_BYTES': str(4 * 2**20)}
    ) as (url, proc):
        yield url, proc


def test_schemathesis(fuzz_server):
    """At least 1,000 generated requests across the operations (positive and negative data): no 5xx, answers as
    documented."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    url, _ = fuzz_server
    schema = schemathesis.openapi.from_url(f'{url}/openapi.json')
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    session, counts, statuses = requests.Session(), {}, {}
    rng = random.Random(7)
    valid_dates = FRAME.date.astype(str).tolist()

    def run(op, mode, n):
        @settings(
            max_examples=n,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def one(case):
            b = case.body
            if (
                mode == GenerationMode.POSITIVE
                and isinstance(b, dict)
                and isinstance(b.get('history'), list)
                and rng.random() < 0.5
            ):
                for r, d in zip(
                    b['history'][-L:], valid_dates[-len(b['history'][-L:]) :]
                ):  # valid steps: reach the model
                    if isinstance(r, dict):
                        r['date'] = d
            resp = case.call_and_validate(base_url=url, session=session, checks=checks)
            counts[op.label] = counts.get(op.label, 0) + 1
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        one()

    for res in schema.get_all_operations():
        op = res.ok()
        if op.path == '/predict':
            run(op, GenerationMode.POSITIVE, 800)
            run(op, GenerationMode.NEGATIVE, 250)
        else:
            run(op, GenerationMode.POSITIVE, 20)
    print(f'\nschemathesis: {sum(counts.values())} requests {counts}; statuses {statuses}')
    assert sum(counts.values()) >= 1000 and statuses.get(200, 0) >= 100 and not any(s >= 500 for s in statuses)


def _mutations(rng: random.Random):
    "Mutations of a valid body: values, timestamps, offsets, keys, lengths, frequencies, horizon, structure."
    vals = [
        float('nan'),
        float('inf'),
        -float('inf'),
        1.7e308,
        -1.7e308,
        5e-324,
        0,
        10**30,
        -(10**18),
        '12.5',
        'abc',
        '',
        True,
        None,
        [],
        {},
        [1.0],
        {'v': 1},
        '1e999',
        'NaN',
    ]
    stamps = [
        'garbage',
        '',
        '2020/01/01 00:00',
        '01.02.2020',
        '2020-01-01T00:00:00.123456789',
        '1677-09-21 00:00:00',
        '2262-04-11 23:00:00',
        '0001-01-01',
        '9999-12-31T23:59:59',
        12345,
        None,
        '2020-13-01 00:00:00',
        'now',
        'NaT',
        '2020-01-01 00:00:00+25:00',
        '2020-01-01 00:00:00+02:00',
        '2020-01-01T00:00:00Z',
    ]

    def value(b):
        i = rng.randrange(len(b['history']))
        b['history'][i]['OT'] = rng.choice(vals)

    def all_values(b):
        v = rng.choice([1.7e308, -1.7e308, 1e300, 1e-300, 0.0, 1e15])
        for r in b['history']:
            r['OT'] = v * rng.choice([1, -1, 1])

    def stamp(b):
        i = rng.randrange(len(b['history']))
        b['history'][i]['date'] = rng.choice(stamps)

    def offsets(b):
        offs = ['+02:00', 'Z', '-05:30', '+0100', '', '+00:00', '-00:00', '+14:00']
        uniform = rng.random() < 0.5
        o = rng.choice(offs)
        for r in b['history']:
            r['date'] = r['date'] + (o if uniform else rng.choice(offs))

    def iso_t(b):
        for r in b['history']:
            r['date'] = r['date'].replace(' ', 'T')

    def keys(b):
        for r in b['history']:
            for _ in range(rng.randrange(0, 20)):
                r[f'k{rng.randrange(10**6)}'] = rng.random()

    def drop_key(b):
        i = rng.randrange(len(b['history']))
        b['history'][i].pop(rng.choice(['date', 'OT']), None)

    def length(b):
        n = rng.choice([0, 1, L - 1, L + 1, 3 * L])
        b['history'] = (
            (b['history'] * 4)[:n]
            if n <= L
            else FRAME.iloc[100 : 100 + n].assign(date=lambda d: d.date.astype(str)).to_dict('records')
        )

    def freq(b):
        step = rng.choice(['30min', '2h', '1D', '1s', '7D', 'MS', 'h'])
        import pandas as pd

        for r, t in zip(
            b['history'],
            pd.date_range(rng.choice(['2020-01-01', '1700-01-01', '2262-01-01']), periods=len(b['history']), freq=step),
        ):
            r['date'] = str(t)

    def shuffle(b):
        rng.shuffle(b['history'])

    def dup(b):
        i = rng.randrange(1, len(b['history']))
        b['history'][i]['date'] = b['history'][i - 1]['date']

    def horizon(b):
        b['horizon'] = rng.choice([None, 0, 1, H, H + 1, -1, 10**20, 2.5, '3', True, [], {}])

    def structure(b):
        k = rng.randrange(4)
        if k == 0:
            b['extra'] = 1
        elif k == 1:
            b['history'] = rng.choice(['x', 5, None, {}, [[1, 2]], [1] * L])
        elif k == 2:
            b.pop('history')
        else:
            b['history'][rng.randrange(len(b['history']))] = rng.choice([[], 'x', 1, None])

    return [value, all_values, stamp, offsets, iso_t, keys, drop_key, length, freq, shuffle, dup, horizon, structure]


def test_mutation_fuzzer(fuzz_server):
    "2,000 mutated valid requests (1-3 mutations each, fixed seed): never a 5xx, never a non-finite forecast."
    url, _ = fuzz_server
    rng = random.Random(20261129)
    muts = _mutations(rng)
    s, statuses, n200 = requests.Session(), {}, 0
    for i in range(2000):
        b = body(rng.randrange(0, 300), n=rng.choice([L, L, 2 * L, 24]))
        for m in rng.sample(muts, rng.choice([1, 1, 2, 3])):
            try:
                m(b)
            except (KeyError, ValueError, IndexError, TypeError, AttributeError):
                pass
        r = s.post(f'{url}/predict', data=json.dumps(b, allow_nan=True), headers={'content-type': 'application/json'})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (b, r.text[:500])
        if r.status_code == 200:
            n200 += 1
            fc = r.json()['forecast']
            h = b.get('horizon') or H
            assert len(fc) == h and all(isinstance(x['OT'], float) and np.isfinite(x['OT']) for x in fc), (b, fc[:3])
        else:
            d = r.json()['detail']
            assert isinstance(d, str) and 'Traceback' not in d and str(ROOT.parent) not in d
    print(f'\nmutation fuzzer: 2000 requests, statuses {statuses}')
    assert n200 > 100 and set(statuses) <= {200, 413, 422}


def test_worst_shapes_bounded(fuzz_server):
    "Bodies up to the 4 MiB limit shaped to hurt: memory stays bounded, /health keeps answering; figures printed."
    url, proc = fuzz_server
    p = psutil.Process(proc.pid)
    import pandas as pd

    def valid(n):  # n rows one hour apart: bodies that pass every check and reach the model
        return [
            {'date': str(t), 'OT': float(v)}
            for t, v in zip(pd.date_range('2001-01-01', periods=n, freq='h'), np.sin(np.arange(n) / 9))
        ]

    rows = valid(L)
    big_row = {'date': rows[0]['date'], 'OT': 1.0}
    shapes = {
        'many distinct keys (1000 rows x 100 keys)': json.dumps(
            {'history': [{**r, **{f'key{i}_{j}': 1.0 for j in range(100)}} for i, r in enumerate(valid(1000))]}
        ),
        'one record with 60k keys': json.dumps(
            {'history': [{**big_row, **{f'k{j}': j for j in range(60_000)}}, *valid(L + 1)[1:]]}
        ),
        'max rows (5000)': json.dumps({'history': valid(5000)}),
        'rows over the limit (5001)': json.dumps({'history': valid(5001)}),
        'deep nesting': '{"history": ' + '[' * 200_000 + ']' * 200_000 + '}',
        'one 3 MiB string': json.dumps({'history': [dict(big_row, date='9' * (3 * 2**20))]}),
        'many tiny numbers': json.dumps({'history': [dict(r, OT=[0.1] * 2000) for r in rows[:100]]}),
        'long unicode keys': json.dumps(
            {'history': [{**r, ('é' * 400 + str(i)): 1} for i, r in enumerate(valid(800))]}, ensure_ascii=False
        ),
    }
    rss0 = p.memory_info().rss
    health, stop = [], [False]

    def poll():
        while not stop[0]:
            t = time.perf_counter()
            requests.get(f'{url}/health', timeout=60)
            health.append(time.perf_counter() - t)
            time.sleep(0.05)

    th = threading.Thread(target=poll)
    th.start()
    report, peak = [], rss0
    try:
        for name, data in shapes.items():
            for _ in range(3):
                t = time.perf_counter()
                r = requests.post(
                    f'{url}/predict', data=data.encode(), headers={'content-type': 'application/json'}, timeout=120
                )
                dt = time.perf_counter() - t
                peak = max(peak, p.memory_info().rss)
                assert r.status_code in (200, 413, 422), (name, r.status_code, r.text[:200])
            report.append(f'{name}: {len(data) / 2**20:.2f} MiB -> {r.status_code} in {dt * 1000:.0f} ms')
    finally:
        stop[0] = True
        th.join()
    rss1 = p.memory_info().rss
    print(
        '\nworst shapes:\n  '
        + '\n  '.join(report)
        + f'\n  server RSS {rss0 / 2**20:.0f} MB before, peak {peak / 2**20:.0f} MB, {rss1 / 2**20:.0f} MB after; '
        f'/health max {max(health) * 1000:.0f} ms over {len(health)} polls'
    )
    assert peak - rss0 < 600 * 2**20 and rss1 - rss0 < 300 * 2**20
    assert requests.post(f'{url}/predict', json=body()).status_code == 200
