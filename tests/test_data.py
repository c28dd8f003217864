"""Loading: the ETT download path against a local HTTP server (never the internet), checksums, and malformed files."""

import functools, http.server, os, re, shutil, threading
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
        ('when,y\n2020-01-01,1\n', "data.time_col 'ts' is not a column; columns are: 'when', 'y'"),
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
        'y: 1 empty or NaN value(s), first at: 2020-01-01 02:00:00',
        'data.on_issue=fill',
    ]:
        assert part in msg, (part, msg)
    with pytest.raises(DataError) as e:  # 3 of 6 rows repaired: far more than the default bound of 5%
        load_frame(cfg(p, on_issue='fill'))
    assert 'would repair 3 of 6 rows (50.0%' in str(e.value) and 'data.max_repair_share=0.05' in str(e.value)
    df, rep = load_frame(cfg(p, on_issue='fill', max_repair_share=0.5))
    assert df.y.tolist() == [1, 2, 3, 4, 5, 6] and rep.filled and len(rep.issues) == 4 and rep.repaired == 3
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


@pytest.mark.parametrize('text', ['ts,y\n2020-01-01,1\n', '', 'ts,y\n', 'ts;y\n2020-01-01;1\n', 'ts,y\n01/02/2020,1\n'])
def test_every_read_failure_names_the_file(tmp_path, text):
    p = tmp_path / 'short.csv'
    p.write_text(text)
    with pytest.raises(DataError) as e:
        load_frame(DataConfig(path=str(p), time_col='ts', target='y'))
    assert str(e.value).startswith(f'{p}: '), str(e.value)


# --- timestamps are never guessed, repairs are bounded, CSV dialects (issue 16) ---


@pytest.fixture(scope='module')
def ett_variants(tmp_path_factory):
    "ETTh1 rewritten: every timestamp dd/mm/yyyy HH:MM, every second one so (the rest ISO), 200 rows no day decides."
    d = tmp_path_factory.mktemp('ett')
    raw = pd.read_csv(SHARED / 'ETTh1.csv')
    dd = pd.to_datetime(raw.date).dt.strftime('%d/%m/%Y %H:%M')
    raw.assign(date=dd).to_csv(d / 'dayfirst.csv', index=False)
    raw.assign(date=np.where(np.arange(len(raw)) % 2 == 1, dd, raw.date)).to_csv(d / 'mixed.csv', index=False)
    raw.head(200).assign(date=dd.head(200)).to_csv(d / 'ambiguous.csv', index=False)
    raw.to_csv(d / 'semicolon.csv', index=False, sep=';', decimal=',')
    raw.drop(index=range(100, 1100)).to_csv(d / 'holes.csv', index=False)  # 1,000 hours missing (6%)
    return d


def ett_cfg(path, **kw):
    return DataConfig(path=str(path), **kw)


def test_mixed_formats_are_refused_naming_rows_and_formats(ett_variants):
    for on_issue in ('fail', 'fill'):  # never repaired: a parse problem is not a gap
        with pytest.raises(DataError) as e:
            load_frame(ett_cfg(ett_variants / 'mixed.csv', on_issue=on_issue))
        msg = str(e.value)
        assert 'date: timestamps written in 2 formats' in msg, msg
        assert 'YYYY-MM-DD (ISO 8601): 8710 row(s), first row 0 (2016-07-01 00:00:00)' in msg
        assert 'DD/MM/YYYY: 8710 row(s), first row 1 (01/07/2016 01:00)' in msg
        assert 'data.dayfirst=true' in msg and "data.time_format=['%Y-%m-%d %H:%M:%S', '%d/%m/%Y %H:%M']" in msg
        assert 'out of order' not in msg and 'missing' not in msg  # the cause, not the symptoms


@pytest.mark.parametrize(
    'name, kw',
    [
        ('mixed.csv', {'dayfirst': True}),
        ('mixed.csv', {'time_format': ['%Y-%m-%d %H:%M:%S', '%d/%m/%Y %H:%M']}),
        ('dayfirst.csv', {}),  # days above 12 decide: only day-first fits
        ('dayfirst.csv', {'time_format': '%d/%m/%Y %H:%M'}),
        ('dayfirst.csv', {'dayfirst': True, 'on_issue': 'fill'}),
    ],
)
def test_day_first_file_loads_with_the_setting(ett_variants, name, kw):
    df, rep = load_frame(ett_cfg(ett_variants / name, **kw))
    assert rep.n_rows == 17420 and rep.start == '2016-07-01 00:00:00' and not rep.issues and rep.freq == 'h'
    ref, _ = load_frame(DataConfig(dataset='ETTh1'))
    assert (df.date.to_numpy() == ref.date.to_numpy()).all() and np.allclose(df.OT, ref.OT)


def test_ambiguous_day_month_needs_a_setting(ett_variants):
    p = ett_variants / 'ambiguous.csv'
    with pytest.raises(DataError) as e:
        load_frame(ett_cfg(p))
    msg = str(e.value)
    assert 'DD/MM/YYYY and MM/DD/YYYY both fit every timestamp' in msg and 'first row 0 (01/07/2016 00:00)' in msg
    assert 'data.dayfirst' in msg and "data.time_format='%d/%m/%Y %H:%M'" in msg
    df, rep = load_frame(ett_cfg(p, dayfirst=True))
    assert rep.n_rows == 200 and rep.start == '2016-07-01 00:00:00' and rep.time_formats == ['DD/MM/YYYY']


def test_day_month_fitting_neither_order(tmp_path):
    p = write(tmp_path, 'ts,y\n12/01/2020,1\n13/01/2020,2\n01/14/2020,3\n')
    with pytest.raises(DataError, match=r'fit neither order: .*row 1 \(13/01/2020\).*row 2 \(01/14/2020\)'):
        load_frame(cfg(p))


def test_wrong_explicit_order_names_the_setting(tmp_path):
    p = write(tmp_path, 'ts,y\n12/01/2020,1\n13/01/2020,2\n12/03/2020,3\n')
    with pytest.raises(DataError, match=r'unparseable timestamp.*13/01/2020 \(rows 1;.*data.dayfirst=false'):
        load_frame(cfg(p, dayfirst=False, freq='D'))


def test_other_time_shapes(tmp_path):
    from tsforge.data import parse_times

    s = pd.Series(['2016-07-01 00:00 UTC', '2016-07-01 01:00 UTC'], name='t')
    assert parse_times(s).tolist() == list(pd.date_range('2016-07-01', periods=2, freq='h', tz='UTC'))
    s = pd.Series(['5 Jan 2020', 'Jan 6 2020'], name='t')
    assert parse_times(s).tolist() == list(pd.date_range('2020-01-05', periods=2))
    for unit, k in (('s', 1), ('ms', 1000)):  # Unix times: the unit is the one every value fits
        s = pd.Series([1467331200 * k, 1467334800 * k], name='t')
        assert parse_times(s).tolist() == list(pd.date_range('2016-07-01', periods=2, freq='h')), unit
    assert str(parse_times(pd.Series([1467331200], name='t'), tz='Europe/Paris')[0]) == '2016-07-01 02:00:00+02:00'
    with pytest.raises(DataError, match='not Unix times in one unit.*set data.time_format'):
        parse_times(pd.Series([20160701, 20160702], name='t'))
    assert parse_times(pd.Series([20160701], name='t'), time_format='%Y%m%d')[0] == pd.Timestamp('2016-07-01')
    p = tmp_path / 'd.parquet'  # a datetime column passes as it is
    pd.DataFrame({'ts': pd.date_range('2021', periods=5, freq='D'), 'y': np.arange(5.0)}).to_parquet(p)
    assert load_frame(cfg(p))[1].time_formats == ['datetime column']


def test_time_format_list_that_clashes(tmp_path):
    p = write(tmp_path, 'ts,y\n01/02/2020,1\n02/02/2020,2\n')
    with pytest.raises(DataError, match=r'read 1 row\(s\), first row 0 \(01/02/2020\) as different times'):
        load_frame(cfg(p, time_format=['%d/%m/%Y', '%m/%d/%Y']))


@pytest.mark.parametrize(
    'kw, msg',
    [
        ({'time_format': 'dd/mm/yyyy'}, 'not a strptime format (no % directive)'),
        ({'time_format': '%d/%m/%Q'}, 'unknown directive(s) %Q'),
        ({'time_format': '%d/%m/%Y', 'dayfirst': True}, 'give data.time_format or data.dayfirst, not both'),
        ({'sep': ';;'}, 'a separator is one character'),
        ({'sep': ',', 'decimal': ','}, 'data.sep and data.decimal are both'),
        ({'max_repair_share': 1.5}, 'less than or equal to 1'),
        ({'format': 'long', 'id_col': 'date'}, "data.id_col and data.time_col are both 'date'"),
    ],
)
def test_new_data_settings_are_checked(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        DataConfig(dataset='ETTh1', **kw)


def test_fill_is_bounded_by_max_repair_share(ett_variants):
    p = ett_variants / 'holes.csv'
    with pytest.raises(DataError) as e:
        load_frame(ett_cfg(p, on_issue='fill'))
    msg = str(e.value)
    assert 'on_issue=fill would repair 1000 of 16420 rows (6.1%: 1000 inserted, 0 dropped, 0 with NaN' in msg, msg
    assert 'more than data.max_repair_share=0.05' in msg and '1000 missing timestamp(s)' in msg
    df, rep = load_frame(ett_cfg(p, on_issue='fill', max_repair_share=0.1))
    assert rep.n_rows == 17420 and rep.filled and rep.repaired == 1000


def test_fill_bound_per_series_in_long_format(tmp_path):
    from tsforge.data import synthetic_panel

    p = synthetic_panel(3, 100, seed=0)
    p = p.drop(index=p.index[(p.unique_id == 's1').to_numpy()][10:20])  # 10 of s1's 100 hours missing
    p.to_csv(tmp_path / 'long.csv', index=False)
    c = DataConfig(path=str(tmp_path / 'long.csv'), format='long', id_col='unique_id', time_col='ds', target='y')
    with pytest.raises(DataError, match=r"repair 10 of 90 rows of series 's1' \(11.1%"):
        load_frame(c.model_copy(update={'on_issue': 'fill'}))
    df, rep = load_frame(c.model_copy(update={'on_issue': 'fill', 'max_repair_share': 0.2}))
    assert len(df) == 300 and rep.repaired == 10


def test_semicolon_and_decimal_comma(ett_variants):
    p = ett_variants / 'semicolon.csv'
    assert (p.read_text().splitlines()[1]).startswith('2016-07-01 00:00:00;5,827')
    ref, _ = load_frame(DataConfig(dataset='ETTh1'))
    for kw in ({}, {'sep': ';', 'decimal': ','}, {'sep': ';'}):  # detected, or set
        df, rep = load_frame(ett_cfg(p, **kw))
        assert (rep.sep, rep.decimal, rep.n_rows) == (';', ',', 17420), kw
        assert np.allclose(df[ref.columns[1:]], ref[ref.columns[1:]]) and (df.date == ref.date).all()
    with pytest.raises(DataError) as e:  # a wrong separator: the error names the dialect
        load_frame(ett_cfg(p, sep=','))
    assert "the header 'date;HUFL;HULL;MUFL;MULL;LUFL;LULL;OT' looks ';'-separated: set data.sep=';'" in str(e.value)
    assert "data.decimal=','" in str(e.value)
    with pytest.raises(DataError, match="decimal commas: set data.decimal=','"):
        load_frame(ett_cfg(p, sep=';', decimal='.'))


def test_tab_separated(tmp_path):
    p = write(tmp_path, 'ts\ty\n2020-01-01 00:00\t1.5\n2020-01-01 01:00\t2.5\n2020-01-01 02:00\t3\n', 'd.tsv')
    df, rep = load_frame(cfg(p))
    assert rep.sep == '\t' and df.y.tolist() == [1.5, 2.5, 3.0]


def test_long_format_timestamps_are_not_guessed_either(tmp_path):
    rows = [f'{s},0{d}/07/2016,{d}' for s in ('a', 'b') for d in range(1, 6)]
    p = write(tmp_path, 'id,ts,y\n' + '\n'.join(rows) + '\n')
    c = DataConfig(path=str(p), format='long', id_col='id', time_col='ts', target='y')
    with pytest.raises(DataError, match='DD/MM/YYYY and MM/DD/YYYY both fit every timestamp'):
        load_frame(c)
    df, rep = load_frame(c.model_copy(update={'dayfirst': True}))
    assert rep.freq == 'D' and df.ts.min() == pd.Timestamp('2016-07-01') and len(df) == 10


def hours(values, extra=None):
    "A ts,y CSV text of hourly rows with `values` (strings) for y, and an extra column x of `extra` if given."
    head = 'ts,y' + (',x' if extra else '')
    rows = [f'2020-01-01 {i:02d}:00,{v}' + (f',{extra[i]}' if extra else '') for i, v in enumerate(values)]
    return head + '\n' + '\n'.join(rows) + '\n'


def test_infinite_values_are_reported_or_repaired(tmp_path):
    p = write(tmp_path, hours(['1', 'inf', '3', '4', '-inf', '6', '7', '8', '9', '10']))
    with pytest.raises(DataError) as e:
        load_frame(cfg(p))
    assert 'y: 2 infinite value(s), first at: 2020-01-01 01:00:00, 2020-01-01 04:00:00' in str(e.value)
    df, rep = load_frame(cfg(p, on_issue='fill', max_repair_share=0.2))
    assert 'y: 2 infinite value(s), first at: 2020-01-01 01:00:00, 2020-01-01 04:00:00' in rep.issues
    assert df.y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] and rep.repaired == 2 and rep.filled


def test_infinite_values_in_long_format(tmp_path):
    rows = [f'{s},2020-01-0{d},{"inf" if (s, d) == ("b", 3) else d}' for s in ('a', 'b') for d in range(1, 6)]
    p = write(tmp_path, 'id,ts,y\n' + '\n'.join(rows) + '\n')
    c = DataConfig(path=str(p), format='long', id_col='id', time_col='ts', target='y')
    with pytest.raises(DataError, match=r"series 'b': 1 infinite y value\(s\) \(rows 7\)"):
        load_frame(c)
    df, rep = load_frame(c.model_copy(update={'on_issue': 'fill', 'max_repair_share': 0.5}))
    assert df.y.tolist() == [1, 2, 3, 4, 5] * 2 and any('infinite' in i for i in rep.issues)


def test_each_bad_cell_is_counted_once(tmp_path):
    """A non-numeric, an infinite and an empty cell and a missing row: each said once, by what it is (the NaN line
    counts neither the cells already reported nor the rows a fill inserts), and the repair still counts them all."""
    rows = ['00:00,1,1', '01:00,abc,2', '02:00,3,inf', '03:00,,4', '05:00,6,6', '06:00,7,7']
    p = write(tmp_path, 'ts,y,x\n' + ''.join(f'2020-01-01 {r}\n' for r in rows))
    with pytest.raises(DataError) as e:
        load_frame(cfg(p, columns=['x']))
    issues = str(e.value).split(': ', 1)[1].removesuffix(' (set data.on_issue=fill to repair)').split('; ')
    assert issues == [
        'x: 1 infinite value(s), first at: 2020-01-01 02:00:00',  # columns in data.columns order, then the target
        'y: 1 non-numeric value(s), first at: 2020-01-01 01:00:00',
        'y: 1 empty or NaN value(s), first at: 2020-01-01 03:00:00',
        'ts: 1 missing timestamp(s) at frequency h, first: 2020-01-01 04:00:00',
    ], issues
    df, rep = load_frame(cfg(p, columns=['x'], on_issue='fill', max_repair_share=0.9))
    assert rep.repaired == 4 and df.y.tolist() == [1, 2, 3, 4, 5, 6, 7], (rep.repaired, df.y.tolist())
    long = write(tmp_path, 'id,ts,y\n' + ''.join(f'a,2020-01-01 {r.rsplit(",", 1)[0]}\n' for r in rows), 'l.csv')
    c = DataConfig(path=str(long), format='long', id_col='id', time_col='ts', target='y')
    df, rep = load_frame(c.model_copy(update={'on_issue': 'fill', 'max_repair_share': 0.9}))
    assert [i.split(' (')[0] for i in rep.issues] == [
        "series 'a': 1 non-numeric y value(s)",
        "series 'a': 1 missing timestamp(s) at frequency h",
        "series 'a': 1 row(s) with empty or NaN values",
    ], rep.issues
    assert rep.repaired == 3 and df.y.tolist() == [1, 2, 3, 4, 5, 6, 7], (rep.repaired, df.y.tolist())


def test_text_columns_are_skipped_and_listed_columns_with_some_numbers_are_checked(tmp_path):
    rows = ['00:00,1,1.5,a', '01:00,2,?,b', '02:00,3,2,c', '03:00,4,3,d']
    p = write(tmp_path, 'ts,y,x,lab\n' + ''.join(f'2020-01-01 {r}\n' for r in rows))
    with pytest.raises(DataError, match=r'x: 1 non-numeric value\(s\), first at: 2020-01-01 01:00:00'):
        load_frame(cfg(p))  # a mostly-numeric column with one bad value is not dropped silently
    df, rep = load_frame(cfg(p, on_issue='fill', max_repair_share=0.5))
    assert list(df.columns) == ['ts', 'y', 'x'] and df.x.tolist() == [1.5, 1.75, 2, 3]
    assert rep.skipped_columns == ['lab'] and rep.summary().skipped_columns[0] == 'lab'
    p = write(tmp_path, hours(['1', '2', '3'], ['"1,5"', '"2,5"', '"3,5"']))  # decimal commas in a comma file
    with pytest.raises(DataError, match=r"x: 3 non-numeric value\(s\).*decimal commas: set data.decimal=','"):
        load_frame(cfg(p))
    df, rep = load_frame(cfg(p, columns=['y']))  # named columns: the others are not read at all
    assert list(df.columns) == ['ts', 'y'] and rep.skipped_columns == []


def test_no_parseable_timestamp_names_the_time_column(tmp_path):
    p = write(tmp_path, 'ts,y\n2016-07-01 00:00:00,1\n2016-07-01 01:00:00,2\n2016-07-01 02:00:00,3\n')
    for kw in ({}, {'freq': 'h'}):  # not the frequency (inferred from no rows) nor an IndexError
        with pytest.raises(DataError) as e:
            load_frame(cfg(p, time_format='%Y-%m-%d', **kw))
        assert 'ts: 3 unparseable timestamp(s), first: 2016-07-01 00:00:00' in str(e.value), str(e.value)
        assert 'data.freq' not in str(e.value)
    p = write(tmp_path, 'ts,y\n01/07/16,1\n02/07/16,2\n03/07/16,3\n')  # two-digit years
    with pytest.raises(DataError, match=r'ts: 3 unparseable timestamp\(s\)'):
        load_frame(cfg(p))


@pytest.mark.parametrize(
    'values, fmt',
    [(['2020010100', '2020010101', '2020010102'], '%Y%m%d%H'), (['202001010000', '202001010100'], '%Y%m%d%H%M')],
)
def test_compact_dates_are_not_read_as_unix_times(tmp_path, values, fmt):
    p = write(tmp_path, 'ts,y\n' + '\n'.join(f'{v},{i}' for i, v in enumerate(values)) + '\n')
    with pytest.raises(DataError, match=f'read both as Unix times and as dates.*data.time_format={fmt}'):
        load_frame(cfg(p))
    df, _ = load_frame(cfg(p, time_format=fmt))
    assert df.ts[0] == pd.Timestamp('2020-01-01')
    p = write(tmp_path, 'ts,y\n1467331200,1\n1467334800,2\n1467338400,3\n')  # Unix seconds that are no such date
    assert load_frame(cfg(p))[0].ts[0] == pd.Timestamp('2016-07-01')


def test_long_format_ids_keep_leading_zeros(tmp_path):
    rows = [f'{s},2020-01-0{d},{d}' for s in ('001', '01', '1') for d in range(1, 6)]
    p = write(tmp_path, 'id,ts,y\n' + '\n'.join(rows) + '\n')
    c = DataConfig(path=str(p), format='long', id_col='id', time_col='ts', target='y')
    df, rep = load_frame(c)
    assert list(df.id.cat.categories) == ['001', '01', '1'] and rep.series == 3 and len(df) == 15
    with pytest.raises(DataError, match="data.id_col 'item' is not a column"):
        load_frame(c.model_copy(update={'id_col': 'item'}))


def test_monthly_data_with_a_gap_asks_for_the_calendar_alias(tmp_path):
    months = [m for m in pd.date_range('2020-01-01', periods=24, freq='MS') if m != pd.Timestamp('2020-06-01')]
    p = write(tmp_path, 'ts,y\n' + '\n'.join(f'{m:%Y-%m-%d},{i}' for i, m in enumerate(months)) + '\n')
    with pytest.raises(DataError) as e:
        load_frame(cfg(p))
    msg = str(e.value)
    assert 'data.freq: the timestamps step by about a month' in msg and 'set data.freq=MS (every timestamp' in msg, msg
    assert 'not on the' not in msg
    with pytest.raises(DataError, match=r'1 missing timestamp\(s\) at frequency MS, first: 2020-06-01'):
        load_frame(cfg(p, freq='MS'))
    df, rep = load_frame(cfg(p, freq='MS', on_issue='fill'))
    assert len(df) == 24 and rep.freq == 'MS' and rep.repaired == 1
    quarters = [q for q in pd.date_range('2010-01-01', periods=12, freq='QS') if q != pd.Timestamp('2011-04-01')]
    p = write(tmp_path, 'ts,y\n' + '\n'.join(f'{q:%Y-%m-%d},{i}' for i, q in enumerate(quarters)) + '\n')
    with pytest.raises(DataError, match='about a quarter.*data.freq=QS'):
        load_frame(cfg(p))


def test_header_and_encoding_problems_are_named(tmp_path):
    p = write(tmp_path, 'ts,y,y\n2020-01-01 00:00,1,2\n2020-01-01 01:00,2,3\n')
    with pytest.raises(DataError, match=r"column name\(s\) \['y'\] appear more than once in the header"):
        load_frame(cfg(p))  # pandas would have renamed the second y to y.1
    p = write(tmp_path, 'ts,y \n2020-01-01 00:00,1\n2020-01-01 01:00,2\n')
    with pytest.raises(DataError) as e:
        load_frame(cfg(p))
    msg = str(e.value)
    assert "column(s) ['y'] not found; columns are: 'ts', 'y ' ('y ' differs from 'y' only by spaces" in msg, msg
    p = tmp_path / 'latin1.csv'
    p.write_bytes('ts,y,caf\xe9\n2020-01-01 00:00,1,2\n2020-01-01 01:00,2,3\n'.encode('latin-1'))
    with pytest.raises(DataError, match=r"'utf-8' codec can't decode byte 0xe9.*save the file as UTF-8"):
        load_frame(cfg(p))


def test_boolean_columns_are_skipped_or_refused_never_read_as_numbers(tmp_path):
    """A True/False column (pandas reads it as bool, or as objects with empty cells) is not 1.0/0.0: with data.columns
    null it is skipped and listed like a text column; named (data.columns, data.target, features) it is a DataError
    naming it and saying to write it as 0/1; in long format alike."""
    rows = ['00:00,1,True,False', '01:00,2,False,', '02:00,3,True,True', '03:00,4,False,False']
    p = write(tmp_path, 'ts,y,promo,open\n' + ''.join(f'2020-01-01 {r}\n' for r in rows))
    assert pd.read_csv(p).promo.dtype == bool and pd.read_csv(p).open.dtype == object  # as pandas reads them
    df, rep = load_frame(cfg(p))
    assert list(df.columns) == ['ts', 'y'] and rep.skipped_columns == ['promo', 'open'] and not rep.issues
    assert rep.summary().skipped_columns[0] == 'promo, open'
    one = "column 'promo' holds booleans (True/False), which are not read as numbers; write it as 0/1"
    for c in (cfg(p, columns=['y', 'promo']), DataConfig(path=str(p), time_col='ts', target=['promo'])):
        with pytest.raises(DataError) as e:
            load_frame(c)
        assert str(e.value) == f'{p}: {one}'
    with pytest.raises(DataError, match="column 'open' holds booleans"):  # with an empty cell: objects, refused too
        load_frame(cfg(p, columns=['open']))
    with pytest.raises(DataError, match=re.escape(one)):  # named elsewhere (features:): refused, not skipped
        load_frame(cfg(p), named=['promo'])
    with pytest.raises(DataError, match=r"columns 'promo', 'open' hold booleans .*; write them as 0/1"):
        load_frame(cfg(p, columns=['promo', 'open']))
    long = write(
        tmp_path, 'id,ts,y,promo\n' + ''.join(f'{s},2020-01-0{d},{d},{d % 2 == 0}\n' for s in 'ab' for d in range(1, 6))
    )
    c = DataConfig(path=str(long), format='long', id_col='id', time_col='ts', target='y')
    df, rep = load_frame(c)
    assert list(df.columns) == ['id', 'ts', 'y'] and rep.skipped_columns == ['promo']
    with pytest.raises(DataError, match=re.escape(one)):
        load_frame(c.model_copy(update={'columns': ['y', 'promo']}))


def test_boolean_feature_column_is_refused_through_prepare(tmp_path):
    "features.future naming a True/False column is the loader's DataError (the bool check of features is not bypassed)."
    from tsforge.config import load_config
    from tsforge.prepare import prepare

    t = pd.date_range('2020-01-01', periods=200, freq='D')
    df = pd.DataFrame({'date': t, 'y': np.arange(200.0), 'promo': np.arange(200) % 3 == 0})
    p = tmp_path / 'promo.csv'
    df.to_csv(p, index=False)
    base = ['data.dataset=null', f'data.path={p}', 'data.target=[y]', 'mode=S', 'input_length=14', 'horizon=7']
    base += ['split.kind=ratio']
    for extra in ([], ['data.columns=[y]'], ['data.columns=null']):
        with pytest.raises(DataError, match="column 'promo' holds booleans .*; write it as 0/1"):
            prepare(load_config('etth1', [*base, *extra, '+features.future=[promo]']))
    rep = prepare(load_config('etth1', [*base, 'data.columns=null', 'mode=M'])).report
    assert rep.columns == ['y'] and rep.skipped_columns == ['promo']


def test_long_format_skips_only_text_columns(tmp_path):
    rows = [f'{s},2020-01-0{d},{d},{"?" if (s, d) == ("b", 2) else d / 2},{s}-label' for s in 'ab' for d in range(1, 6)]
    p = write(tmp_path, 'id,ts,y,x,note\n' + '\n'.join(rows) + '\n')
    c = DataConfig(path=str(p), format='long', id_col='id', time_col='ts', target='y')
    with pytest.raises(DataError, match=r"series 'b': 1 non-numeric x value\(s\) \(rows 6\)"):
        load_frame(c)  # x is read (most values are numbers), its bad value reported
    df, rep = load_frame(c.model_copy(update={'on_issue': 'fill', 'max_repair_share': 0.5}))
    assert list(df.columns) == ['id', 'ts', 'y', 'x'] and rep.skipped_columns == ['note'] and df.x[6] == 1.0


def test_month_name_dates_need_a_full_year_and_their_own_weekday(tmp_path):
    from tsforge.data import parse_times

    def times(values, **kw):
        return parse_times(pd.Series(values, name='t'), **kw).tolist()

    for values in (['5 Mar', '6 Mar'], ['Jan-5', 'Jan-6'], ['5 Jan 69', '6 Jan 69'], ['Jan 5 20', 'Jan 6 20']):
        with pytest.raises(
            DataError,
            match=rf't: dates with month names but no 4-digit year: 2 row\(s\), first row 0 '
            rf'\({values[0]}\).*data.time_format',
        ):
            times(values)
    with pytest.raises(
        DataError,
        match=r't: dates whose weekday name is not their weekday: 1 row\(s\), first row 0 '
        r'\(Mon 1 Jan 2020\) \(2020-01-01 is a Wednesday\).*data.time_format',
    ):
        times(['Mon 1 Jan 2020'])
    with pytest.raises(DataError, match=r'weekday.*row 1 \(Thursday 3 Jan 2020\)'):
        times(['Wed 1 Jan 2020', 'Thursday 3 Jan 2020'])
    assert times(['Wed 1 Jan 2020', 'Thursday, January 2, 2020']) == list(pd.date_range('2020-01-01', periods=2))
    assert times(['5 March 2020', '6 March 2020']) == list(pd.date_range('2020-03-05', periods=2))
    assert times(['Mar 5, 2020 14:00', 'Mar 5, 2020 15:00']) == list(
        pd.date_range('2020-03-05 14:00', periods=2, freq='h')
    )
    assert times(['Jan 2020', 'Feb 2020']) == list(pd.date_range('2020-01-01', periods=2, freq='MS'))
    # converted to UTC the year or the day may change: the check reads the date as written
    assert times(['31 Dec 2019 23:30 -01:00', 'Wed 1 Jan 2020 00:30 +01:00'], tz='UTC') == [
        pd.Timestamp('2020-01-01 00:30', tz='UTC'),
        pd.Timestamp('2019-12-31 23:30', tz='UTC'),
    ]
    assert times(['5 Jan 20'], time_format='%d %b %y') == [pd.Timestamp('2020-01-05')]  # said, not guessed
    # which number is the day is never guessed ('May 2020 12': the 12th at midnight, or 1 May at noon?)
    for v in ('May 2020 12', '2020 12 May', 'May 12 12:00 2020'):
        with pytest.raises(
            DataError,
            match=rf't: dates with month names whose fields are not in an order tsforge '
            rf'reads: 1 row\(s\), first row 0 \({v}\).*data.time_format',
        ):
            times([v])
    assert times(['May 2020 12'], time_format='%b %Y %d') == [pd.Timestamp('2020-05-12')]
    for v in ('01-Jan-2020', '2020 Jan 1', 'January 1st, 2020', 'Jan. 1, 2020 12 am', 'Wed, 1 Jan 2020 0:00'):
        assert times([v]) == [pd.Timestamp('2020-01-01')], v
    # with a UTC offset (the same in every row) the offset is kept, as for ISO timestamps
    assert times(['5 Jan 2020 10:00 +01:00', '5 Jan 2020 11:00 +01:00']) == list(
        pd.date_range('2020-01-05 10:00', periods=2, freq='h', tz='+01:00')
    )
    with pytest.raises(DataError, match=r't: timestamps with different UTC offsets .*no offset: 1 row'):
        times(['5 Jan 2020 10:00 +01:00', '2020-01-05 11:00'])
    p = write(tmp_path, 'ts,y\n5 Mar,1\n6 Mar,2\n7 Mar,3\n')
    with pytest.raises(DataError, match=r'd.csv: ts: dates with month names but no 4-digit year'):
        load_frame(cfg(p))


def test_long_format_with_zone_aware_timestamps(tmp_path):
    hours = pd.date_range('2020-01-01', periods=30, freq='h', tz='UTC')
    rows = [(s, f'{t:%Y-%m-%dT%H:%M}Z', k) for s in 'ab' for k, t in enumerate(hours)]
    grouped = write(tmp_path, 'id,ts,y\n' + ''.join(f'{s},{t},{k}\n' for s, t, k in rows), 'grouped.csv')
    rows.sort(key=lambda r: (r[1], r[0]))
    mixed = write(tmp_path, 'id,ts,y\n' + ''.join(f'{s},{t},{k}\n' for s, t, k in rows), 'mixed.csv')
    for p in (grouped, mixed):
        for tz in (None, 'UTC'):
            df, rep = load_frame(cfg(p, format='long', id_col='id', tz=tz))
            assert rep.freq == 'h' and len(df) == 60 and df.ts.tolist() == [*hours, *hours], (p, tz)
    # daily data on a clock with daylight saving: a day is 23 h on 29 March 2020; long reads it as wide does
    days = pd.date_range('2020-03-20', periods=20, freq='D', tz='Europe/Paris')
    wide = write(tmp_path, 'ts,y\n' + ''.join(f'{t.isoformat()},{k}\n' for k, t in enumerate(days)), 'wide.csv')
    assert load_frame(cfg(wide, tz='Europe/Paris'))[0].ts.tolist() == list(days)
    text = ''.join(f'{s},{t.isoformat()},{k}\n' for s in 'ab' for k, t in enumerate(days) if (s, k) != ('b', 12))
    long = write(tmp_path, 'id,ts,y\n' + text, 'long.csv')
    with pytest.raises(DataError, match=r"series 'b': 1 missing timestamp\(s\) at frequency D"):
        load_frame(cfg(long, format='long', id_col='id', tz='Europe/Paris'))
    df, rep = load_frame(
        cfg(long, format='long', id_col='id', tz='Europe/Paris', on_issue='fill', max_repair_share=0.1)
    )
    assert rep.freq == 'D' and df.ts.tolist() == [*days, *days] and df.y.iloc[20 + 12] == 12.0
    late = text.replace('2020-04-02T00:00:00+02:00', '2020-04-02T01:00:00+02:00')  # an hour off a local midnight
    with pytest.raises(DataError, match=r"series 'a': 1 timestamp\(s\) not on the D grid.*2020-04-02 01:00:00\+02:00"):
        load_frame(cfg(write(tmp_path, 'id,ts,y\n' + late, 'late.csv'), format='long', id_col='id', tz='Europe/Paris'))


def test_business_days_and_weeks_with_a_gap_are_not_read_as_days(tmp_path):
    from tsforge.data import infer_freq

    bdays = pd.bdate_range('2020-01-01', periods=60).delete(10)  # one holiday missing
    p = write(tmp_path, 'ts,y\n' + ''.join(f'{t:%Y-%m-%d},{k}\n' for k, t in enumerate(bdays)))
    for kw in ({}, {'on_issue': 'fill', 'max_repair_share': 0.5}):  # never a daily grid with the weekends inserted
        with pytest.raises(
            DataError,
            match=r'data.freq: the timestamps step by a day but none falls on a Saturday '
            r'or Sunday \(59 timestamps.*set data.freq=B .* or data.freq=D',
        ):
            load_frame(cfg(p, **kw))
    with pytest.raises(DataError, match=r'1 missing timestamp\(s\) at frequency B, first: 2020-01-15'):
        load_frame(cfg(p, freq='B'))
    df, rep = load_frame(cfg(p, freq='B', on_issue='fill'))
    assert rep.freq == 'B' and len(df) == 60
    assert infer_freq(pd.bdate_range('2020-01-01', periods=60)) == 'B'  # complete: pandas says B
    assert infer_freq(pd.date_range('2020-01-06', periods=4).delete(2)) == '1D'  # no weekend in between: days as before
    assert infer_freq(pd.date_range('2020-01-01', periods=30).delete(5)) == '1D'  # weekends present: days

    weeks = pd.date_range('2020-01-05', periods=60, freq='W-SUN').delete(10)
    p = write(tmp_path, 'ts,y\n' + ''.join(f'{t:%Y-%m-%d},{k}\n' for k, t in enumerate(weeks)), 'w.csv')
    with pytest.raises(DataError, match=r'1 missing timestamp\(s\) at frequency W-SUN, first: 2020-03-15'):
        load_frame(cfg(p))
    df, rep = load_frame(cfg(p, on_issue='fill'))
    assert rep.freq == 'W-SUN' and df.ts.tolist() == list(pd.date_range('2020-01-05', periods=60, freq='W-SUN'))
    assert infer_freq(pd.date_range('2020-01-07 10:00', periods=9, freq='14D').delete(3)) == '2W-TUE'
    off = pd.DatetimeIndex(['2020-01-05', '2020-01-12', '2020-01-26', '2020-02-02', '2020-02-10'])  # a Monday
    assert infer_freq(off) == '7D'  # not all on one weekly grid: the most common step, as before


def test_split_date_between_two_rows_is_refused_not_rounded():
    from tsforge.config import ConfigError
    from tsforge.split import date_borders

    hours = pd.Series(pd.date_range('2016-12-31', periods=72, freq='h'))
    b = date_borders(hours, '2017-01-01', '2017-01-02 00:00')  # a date alone: midnight, a row
    assert (b.train_end, b.val_end, b.test_end) == (24, 48, 72)
    with pytest.raises(ConfigError) as e:
        date_borders(hours, '2017-01-01 00:30', '2017-01-02')
    assert str(e.value) == (
        "split.val_start: '2017-01-01 00:30' is not on the data's grid: it falls between the rows at "
        '2017-01-01 00:00:00 and 2017-01-01 01:00:00; tsforge does not round a split date: write one of them'
    )
    with pytest.raises(
        ConfigError,
        match=r"split.test_start: '2017-01-02 00:59:59' is not on the data's grid: .* "
        r'rows at 2017-01-02 00:00:00 and 2017-01-02 01:00:00',
    ):
        date_borders(hours, '2017-01-01', '2017-01-02 00:59:59')


def test_fractional_unix_times_are_read_to_the_microsecond(tmp_path):
    from tsforge.data import parse_times

    s = pd.Series([1577836800.4, 1577836801.4, 1577836802.123456], name='t')
    assert parse_times(s).tolist() == [
        pd.Timestamp('2020-01-01 00:00:00.400'),  # not 00:00:00.400000095, the float's binary error
        pd.Timestamp('2020-01-01 00:00:01.400'),
        pd.Timestamp('2020-01-01 00:00:02.123456'),
    ]
    ms = pd.Series([1577836800400.5, 1577836800401.25], name='t')
    assert parse_times(ms).tolist() == [
        pd.Timestamp('2020-01-01 00:00:00.4005'),
        pd.Timestamp('2020-01-01 00:00:00.40125'),
    ]
    with pytest.raises(DataError, match=r't: Unix times in us with a fraction of a us: 1 row\(s\), first row 1'):
        parse_times(pd.Series([1577836800400000.0, 1577836800400001.5], name='t'))
    p = write(tmp_path, 'ts,y\n' + ''.join(f'{1577836800 + 3600 * k}.4,{k}\n' for k in range(5)))
    df, rep = load_frame(cfg(p))
    assert (
        rep.freq == 'h' and df.ts.iloc[0] == pd.Timestamp('2020-01-01 00:00:00.4') and rep.time_formats == ['Unix time']
    )


def test_offsets_no_clock_uses_are_refused(tmp_path):
    "pandas reads offsets up to +/-23:59; real clocks run from -12:00 to +14:00: anything beyond is a typo, refused."
    from tsforge.data import parse_times

    p = write(tmp_path, 'ts,y\n2020-01-01T00:00+23:00,1\n2020-01-01T01:00+23:00,2\n2020-01-01T02:00+23:00,3\n')
    with pytest.raises(
        DataError,
        match=r'd.csv: ts: UTC offsets no clock uses \(they run from -12:00 to \+14:00\): '
        r'3 row\(s\), first row 0 \(2020-01-01T00:00\+23:00\)',
    ):
        load_frame(cfg(p))
    mixed = pd.Series(['2020-01-01T00:00+01:00', '2020-01-01T00:00-13:00'], name='t')  # converted with data.tz
    with pytest.raises(DataError, match=r'1 row\(s\), first row 1 \(2020-01-01T00:00-13:00\)'):
        parse_times(mixed, tz='UTC')
    for v in ('2020-01-01T00:00+14:00', '2020-01-01T00:00-12:00', '2020-01-01T00:00+0530', '2020-01-01T00:00Z'):
        assert parse_times(pd.Series([v], name='t'))[0] == pd.Timestamp(v), v


def test_duplicates_that_disagree_are_not_chosen_between(tmp_path):
    head = 'ts,y,x\n2020-01-01 00:00,1,5\n2020-01-01 01:00,2,5\n'
    p = write(tmp_path, head + '2020-01-01 01:00,3,5\n2020-01-01 02:00,4,5\n')
    for on_issue in ('fail', 'fill'):  # which reading is right is not for tsforge to guess
        with pytest.raises(DataError, match=r'first ts=2020-01-01 01:00:00: rows 1, 2 \(y: 2.0 vs 3.0\)'):
            load_frame(
                cfg(p, on_issue=on_issue, columns=['y', 'x'], **({'max_repair_share': 1} if on_issue == 'fill' else {}))
            )
    p = write(tmp_path, head + '2020-01-01 01:00,2,5\n2020-01-01 02:00,4,5\n')  # identical copies: fill drops one
    df, rep = load_frame(cfg(p, on_issue='fill', max_repair_share=1))
    assert df.y.tolist() == [1, 2, 4] and rep.repaired == 1
    rows = 'id,ts,y\na,2020-01-01 00:00,1\nb,2020-01-01 00:00,1\na,2020-01-01 01:00,2\na,2020-01-01 01:00,7\n'
    p = write(tmp_path, rows + 'b,2020-01-01 01:00,1\n')
    with pytest.raises(DataError, match=r'first id=a, ts=2020-01-01 01:00:00: rows 2, 3 \(y: 2.0 vs 7.0\)'):
        load_frame(cfg(p, on_issue='fill', max_repair_share=1, format='long', id_col='id'))


def test_typed_timestamps_take_no_format(tmp_path):
    "A parquet datetime column has nothing for data.time_format / dayfirst (or sep / decimal) to read: refused."
    p = tmp_path / 'w.parquet'
    pd.DataFrame({'ts': pd.date_range('2020-01-01', periods=50, freq='h'), 'y': np.arange(50.0)}).to_parquet(p)
    with pytest.raises(DataError, match='ts: the file stores timestamps .* so data.time_format has nothing to read'):
        load_frame(cfg(p, time_format='%Y'))
    with pytest.raises(ValueError, match='data.sep applies to CSV files; .* is parquet'):
        cfg(p, sep=';')
    assert len(load_frame(cfg(p))[0]) == 50
    with pytest.raises(DataError, match='data.dayfirst=true is set but every timestamp is ISO 8601'):
        load_frame(DataConfig(dataset='ETTh1', dayfirst=True))  # year-first dates: nothing for it to settle


def test_columns_without_a_name(tmp_path):
    rows = ['2020-01-01 00:00,1,5', '2020-01-01 01:00,2,5', '2020-01-01 02:00,4,5']
    p = write(tmp_path, 'ts,y,x,\n' + ''.join(r + ',\n' for r in rows))  # a trailing separator on every line
    df, rep = load_frame(cfg(p))
    assert list(df.columns) == ['ts', 'y', 'x'] and rep.skipped_columns == ['column 4 (no name, empty)']
    p = write(tmp_path, 'ts,y,,x\n' + '\n'.join(r.replace(',5', ',9,5') for r in rows) + '\n')
    with pytest.raises(DataError, match='column 3 of 4 has no name in the header but holds values'):
        load_frame(cfg(p))
    p = write(tmp_path, ',ts,y\n' + '\n'.join(f'{i},{r[:-2]}' for i, r in enumerate(rows)) + '\n')  # to_csv's index
    with pytest.raises(DataError, match='column 1 of 3 has no name.*a row index, as DataFrame.to_csv writes'):
        load_frame(cfg(p))
    p = write(tmp_path, 'ts,y\n' + '\n'.join(rows) + '\n')  # more fields than names: pandas would index by ts
    with pytest.raises(DataError, match="the rows have more fields than the header names \\(2: 'ts', 'y'\\)"):
        load_frame(cfg(p))
