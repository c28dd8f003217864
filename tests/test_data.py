"""Loading: the ETT download path against a local HTTP server (never the internet), checksums, and malformed files."""

import functools, http.server, os, shutil, threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsforge.config import DataConfig
from tsforge.data import DataError, ETT_SHA256, ett_path, file_sha256, load_frame

SHARED = Path(os.environ['TSFORGE_DATA_DIR'])


@pytest.fixture
def http_dir(tmp_path):
    "A local HTTP server on 127.0.0.1 serving a temporary folder; stopped after the test."
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()
    srv.server_close()
    t.join(5)


@pytest.fixture
def no_local_copy(tmp_path, monkeypatch):
    monkeypatch.delenv('TSFORGE_DATA_DIR', raising=False)
    monkeypatch.setenv('TSFORGE_CACHE_DIR', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def test_download_verifies_and_caches(http_dir, no_local_copy, monkeypatch):
    root, url = http_dir
    shutil.copy(SHARED / 'ETTh1.csv', root / 'ETTh1.csv')
    monkeypatch.setenv('TSFORGE_ETT_BASE_URL', url)
    p = ett_path('ETTh1')
    assert p == no_local_copy / 'ETTh1.csv' and file_sha256(p) == ETT_SHA256['ETTh1']
    (root / 'ETTh1.csv').unlink()  # the second call is served from the cache
    assert ett_path('ETTh1') == p
    df, rep = load_frame(DataConfig(dataset='ETTh1'))
    assert rep.n_rows == 17420 and rep.sha256 == ETT_SHA256['ETTh1']


def test_download_checksum_mismatch_leaves_nothing(http_dir, no_local_copy, monkeypatch):
    root, url = http_dir
    data = (SHARED / 'ETTh2.csv').read_bytes()
    (root / 'ETTh2.csv').write_bytes(data.replace(b'2016-07-01 00:00:00', b'2016-07-01 00:00:01', 1))
    monkeypatch.setenv('TSFORGE_ETT_BASE_URL', url)
    with pytest.raises(DataError, match='sha256 mismatch'):
        ett_path('ETTh2')
    assert not list(no_local_copy.glob('*'))


def test_download_unreachable(no_local_copy, monkeypatch):
    from conftest import free_port

    monkeypatch.setenv('TSFORGE_ETT_BASE_URL', f'http://127.0.0.1:{free_port()}')
    with pytest.raises(DataError, match='could not download'):
        ett_path('ETTh1')


def test_local_copy_with_wrong_checksum(tmp_path, monkeypatch):
    (tmp_path / 'ETTh1.csv').write_text('date,OT\n2020-01-01,1\n')
    monkeypatch.setenv('TSFORGE_DATA_DIR', str(tmp_path))
    with pytest.raises(DataError, match='sha256 mismatch'):
        ett_path('ETTh1')


def cfg(path, **kw):
    return DataConfig(path=str(path), time_col='ts', target=['y'], **kw)


def write(tmp_path, text, name='d.csv'):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_file_after_validation(tmp_path):
    p = write(tmp_path, 'ts,y\n2020-01-01,1\n')
    c = cfg(p)
    p.unlink()
    with pytest.raises(DataError, match='data file not found'):
        load_frame(c)


@pytest.mark.parametrize(
    'text, expected',
    [
        ('', 'cannot read as CSV'),
        ('ts,y\n', 'no rows'),
        ('when,y\n2020-01-01,1\n', "data.time_col 'ts' is not a column; columns are: when, y"),
        ('ts,z\n2020-01-01,1\n', "column(s) ['y'] not found"),
        ('ts,y\n2020-01-01 00:00,1\nyesterday,2\n2020-01-01 02:00,3\n', '1 unparseable timestamp(s), first: yesterday'),
        (
            'ts,y\n2020-01-01 00:00,1\n2020-01-01 01:00,abc\n2020-01-01 02:00,3\n',
            'y: 1 non-numeric value(s), first at: 2020-01-01 01:00:00',
        ),
        ('ts,y\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 01:30,3\n2020-01-01 03:00,4\n', 'not on the h grid'),
    ],
)
def test_malformed_csv(tmp_path, text, expected):
    with pytest.raises(DataError) as e:
        load_frame(cfg(write(tmp_path, text), freq='h'))
    assert expected in str(e.value)


def test_issues_fail_or_fill(tmp_path):
    rows = [
        '2020-01-01 00:00,1',
        '2020-01-01 01:00,2',
        '2020-01-01 01:00,2',
        '2020-01-01 03:00,4',
        '2020-01-01 02:00,',
        '2020-01-01 05:00,6',
    ]
    p = write(tmp_path, 'ts,y\n' + '\n'.join(rows) + '\n')
    with pytest.raises(DataError) as e:
        load_frame(cfg(p))
    msg = str(e.value)
    for part in [
        '1 duplicate timestamp(s), first: 2020-01-01 01:00:00',
        '1 timestamp(s) out of order, first: 2020-01-01 02:00:00',
        '1 missing timestamp(s) at frequency h, first: 2020-01-01 04:00:00',
        'y: 2 NaN value(s)',
        'data.on_issue=fill',
    ]:
        assert part in msg, (part, msg)
    df, rep = load_frame(cfg(p, on_issue='fill'))
    assert df.y.tolist() == [1, 2, 3, 4, 5, 6] and rep.filled and len(rep.issues) == 4
    assert (df.ts.diff().dropna() == pd.Timedelta('1h')).all()


def test_parquet_and_inferred_freq(tmp_path):
    df = pd.DataFrame({'ts': pd.date_range('2021', periods=30, freq='15min'), 'y': np.arange(30.0), 'note': ['x'] * 30})
    p = tmp_path / 'd.parquet'
    df.to_parquet(p)
    out, rep = load_frame(cfg(p))
    assert rep.freq == '15min' and list(out.columns) == ['ts', 'y']  # non-numeric extra columns are skipped
    (tmp_path / 'bad.parquet').write_bytes(b'PAR1 not really')
    with pytest.raises(DataError, match='cannot read as parquet'):
        load_frame(cfg(tmp_path / 'bad.parquet'))


def test_expected_sha256_of_user_file(tmp_path):
    p = write(tmp_path, 'ts,y\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n')
    with pytest.raises(DataError, match='data.sha256 expects'):
        load_frame(cfg(p, sha256='0' * 64))
    load_frame(cfg(p, sha256=file_sha256(p)))


def _tz_file(tmp_path, stamps, name='tz.csv'):
    p = tmp_path / name
    pd.DataFrame({'ts': stamps, 'y': np.arange(len(stamps), dtype=float)}).to_csv(p, index=False)
    return p


# a daylight-saving change in Paris: 01:00+01:00 ... then +02:00 from 03:00 local (= 01:00 UTC)
DST = [
    '2021-03-28 00:00:00+01:00',
    '2021-03-28 01:00:00+01:00',
    '2021-03-28 03:00:00+02:00',
    '2021-03-28 04:00:00+02:00',
    '2021-03-28 05:00:00+02:00',
]


def test_mixed_offsets_are_a_data_error_naming_file_and_rows(tmp_path):
    p = _tz_file(tmp_path, DST)
    with pytest.raises(DataError) as e:
        load_frame(DataConfig(path=str(p), time_col='ts', target='y'))
    msg = str(e.value)
    assert msg.startswith(f'{p}: ts: timestamps with different UTC offsets')
    assert '+01:00: 2 row(s), first row 0 (2021-03-28 00:00:00+01:00)' in msg
    assert '+02:00: 3 row(s), first row 2 (2021-03-28 03:00:00+02:00)' in msg and 'set data.tz' in msg


def test_mixed_offsets_converted_with_data_tz(tmp_path):
    p = _tz_file(tmp_path, DST)
    df, rep = load_frame(DataConfig(path=str(p), time_col='ts', target='y', tz='UTC'))
    assert str(df.ts.dt.tz) == 'UTC' and rep.freq == 'h' and len(df) == 5 and not rep.issues
    assert df.ts.iloc[0] == pd.Timestamp('2021-03-27 23:00', tz='UTC')
    df, rep = load_frame(DataConfig(path=str(p), time_col='ts', target='y', tz='Europe/Paris'))
    assert str(df.ts.iloc[2]) == '2021-03-28 03:00:00+02:00' and len(df) == 5


def test_uniform_offset_is_kept_or_converted_never_dropped(tmp_path):
    p = _tz_file(tmp_path, [f'2020-01-01 0{i}:00:00+05:30' for i in range(6)])
    df, rep = load_frame(DataConfig(path=str(p), time_col='ts', target='y'))
    assert df.ts.dt.tz is not None and str(df.ts.iloc[0]) == '2020-01-01 00:00:00+05:30'
    assert rep.start == '2020-01-01 00:00:00+05:30'
    df, _ = load_frame(DataConfig(path=str(p), time_col='ts', target='y', tz='UTC'))
    assert str(df.ts.iloc[0]) == '2019-12-31 18:30:00+00:00'


def test_offsets_beside_naive_timestamps(tmp_path):
    p = _tz_file(tmp_path, ['2020-01-01 00:00:00', '2020-01-01 01:00:00+01:00', '2020-01-01 02:00:00+01:00'])
    for tz in (None, 'UTC'):
        with pytest.raises(
            DataError, match=r'no offset: 1 row\(s\), first row 0 .*write every timestamp with its offset'
        ):
            load_frame(DataConfig(path=str(p), time_col='ts', target='y', tz=tz))


def test_naive_timestamps_localised_to_data_tz(tmp_path):
    p = _tz_file(tmp_path, [f'2020-01-01 0{i}:00:00' for i in range(4)])
    df, _ = load_frame(DataConfig(path=str(p), time_col='ts', target='y', tz='Europe/Paris'))
    assert str(df.ts.iloc[0]) == '2020-01-01 00:00:00+01:00'


def test_unknown_time_zone_is_a_config_error():
    with pytest.raises(ValueError, match="data.tz|unknown time zone 'Mars/Olympus'"):
        DataConfig(dataset='ETTh1', tz='Mars/Olympus')


@pytest.mark.parametrize('text', ['ts,y\n2020-01-01,1\n', '', 'ts,y\n', 'ts;y\n2020-01-01;1\n2020-01-02;2\n'])
def test_every_read_failure_names_the_file(tmp_path, text):
    p = tmp_path / 'short.csv'
    p.write_text(text)
    with pytest.raises(DataError) as e:
        load_frame(DataConfig(path=str(p), time_col='ts', target='y'))
    assert str(e.value).startswith(f'{p}: '), str(e.value)
