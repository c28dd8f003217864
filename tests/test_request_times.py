"""Request timestamps are read, never guessed: offsets in one spelling and range, nothing finer than a microsecond
dropped, UTC instants inside pandas' range, one offset across the series of a request, the grid and the forecast
steps of a model trained in a time zone stepped in that zone (a day is 23 hours at a DST change), answers that the
server itself reads back."""

import numpy as np
import pandas as pd
import pytest

from tsforge.preprocess import WindowState
from tsforge.request import (
    RequestError,
    check_arrays,
    format_times,
    future_times64,
    parse_times,
    series_tails,
)

L = 4


def state(freq='h', time_zone=None, long=False):
    if long:
        return WindowState(
            'ds', ['y'], ['y'], L, 3, freq, id_col='uid', series_ids=['a', 'b'],
            series_mean=[[0.0], [0.0]], series_std=[[1.0], [1.0]], time_zone=time_zone,
        )  # fmt: skip
    return WindowState('ds', ['y'], ['y'], L, 3, freq, [0.0], [1.0], time_zone=time_zone)


def hist(times):
    return check_arrays(state(), list(times), {'y': [1.0] * len(times)})


def refused(f, field, *parts):
    with pytest.raises(RequestError) as e:
        f()
    assert e.value.field == field, (e.value.field, e.value.msg)
    for p in parts:
        assert p in e.value.msg, e.value.msg
    return e.value.msg


def test_offsets_in_range_and_written_one_way():
    t = [f'2020-01-01T0{i}:00:00' for i in range(L)]
    assert hist([s + '+05' for s in t]).offset == '+05:00'
    assert hist([s + '+0530' for s in t]).offset == '+05:30'
    assert hist([s + 'z' for s in t]).offset == 'Z'
    assert hist([s + '-12:00' for s in t]).offset == '-12:00'
    for off in ('-13:00', '-14:00', '+14:30', '+05:60'):
        refused(lambda: hist([s + off for s in t]), 'history[0].ds', 'invalid UTC offset', '-12:00 to +14:00')


def test_nothing_finer_than_a_microsecond_is_dropped():
    base = [f'2020-01-01 0{i}:00:00' for i in range(L)]
    assert hist([s + '.123456000' for s in base]).times[0] == np.datetime64('2020-01-01T00:00:00.123456')
    refused(lambda: hist([base[0] + '.123456789', *base[1:]]), 'history[0].ds', 'more precise than a microsecond')
    refused(lambda: hist([*base[:3], base[3] + '.0000001+02:00']), 'history[3].ds', 'more precise than a microsecond')


def test_utc_instants_stay_inside_pandas_range():
    late = [f'2262-04-11T{17 + i}:00:00-05:00' for i in range(L)]
    refused(lambda: hist(late), 'history[3].ds', 'in UTC, outside the supported range')
    early = [f'1677-09-21T0{6 + i}:00:00+14:00' for i in range(L)]
    refused(lambda: hist(early), 'history[0].ds', 'in UTC, outside the supported range')


def test_forecasts_before_1970_are_not_refused():
    # (the distance to pandas' last timestamp overflowed int64 before the Unix epoch: 'would pass 2262' for 1969)
    assert future_times64(state(), np.datetime64('1969-12-31T10:00'), 2).tolist() == [
        np.datetime64('1969-12-31T11:00', 'ns').astype(int),
        np.datetime64('1969-12-31T12:00', 'ns').astype(int),
    ]
    refused(lambda: future_times64(state(), np.datetime64('2262-04-11T22:00'), 3), 'history', 'would pass 2262')


def test_answers_are_iso_8601_the_server_reads_back():
    days = np.array(['2017-03-11', '2017-03-12'], dtype='datetime64[ns]')
    assert format_times(days) == ['2017-03-11', '2017-03-12']
    assert format_times(days, '+02:00') == ['2017-03-11 00:00:00+02:00', '2017-03-12 00:00:00+02:00']
    assert format_times(days[:1], None, 'D') == ['2017-03-11']  # the same shape whatever the horizon
    assert format_times(days[:1], None, 'h') == ['2017-03-11 00:00:00']
    st = WindowState('ds', ['y'], ['y'], 2, 2, 'D', [0.0], [1.0])
    for off in (None, '+02:00'):
        back, got = parse_times(st, format_times(days, off))
        assert (back == days).all() and got == off


def test_series_of_one_request_share_one_offset():
    st = state(long=True)
    t = [f'2020-01-01T0{i}:00:00' for i in range(L)]
    ok = series_tails(st, t + t, {'uid': ['a'] * L + ['b'] * L, 'y': [1.0] * 2 * L})
    assert [x.offset for x in ok[2]] == [None, None]
    for other in ([s + '+02:00' for s in t], t):
        first = [s + 'Z' for s in t]
        msg = refused(
            lambda: series_tails(st, first + other, {'uid': ['a'] * L + ['b'] * L, 'y': [1.0] * 2 * L}),
            f'history[{L}].ds',
            "series 'b' has UTC offset",
            "series 'a' Z",
        )
        assert 'one offset' in msg


def test_a_model_in_a_time_zone_steps_in_it():
    "Daily Paris data: the days around the 2017-03-26 DST change are 24, 23, 24 hours; requests in any offset."
    st = state('D', 'Europe/Paris')
    local = pd.date_range('2017-03-23', periods=L, freq='D', tz='Europe/Paris')  # ends 03-26, the change
    utc = [x.tz_convert('UTC').strftime('%Y-%m-%dT%H:%M:%SZ') for x in local]
    tail = check_arrays(st, utc, {'y': [1.0] * L})  # 23:00Z, 23:00Z, 23:00Z, 22:00Z: one local day apart
    steps = future_times64(st, tail.times[-1], 3, tail.offset)
    assert [str(pd.Timestamp(s)) for s in steps] == [
        '2017-03-26 22:00:00',
        '2017-03-27 22:00:00',
        '2017-03-28 22:00:00',
    ]
    winter = [x.tz_convert('+01:00').isoformat() for x in local]  # one fixed offset across the change
    tail = check_arrays(st, winter, {'y': [1.0] * L})
    steps = future_times64(st, tail.times[-1], 2, tail.offset)
    assert [str(pd.Timestamp(s)) for s in steps] == ['2017-03-26 23:00:00', '2017-03-27 23:00:00']  # local midnight
    fixed = [f'2017-03-2{4 + i}T23:00:00Z' for i in range(L)]  # 24 h apart in UTC: not the model's days
    refused(lambda: check_arrays(st, fixed, {'y': [1.0] * L}), 'history[2].ds', 'one D step apart')
    naive = [str(x.tz_localize(None)) for x in local]
    refused(
        lambda: check_arrays(st, naive, {'y': [1.0] * L}),
        'history[0].ds',
        'no UTC offset',
        'e.g. 2017-03-23T00:00:00+01:00 if that is Europe/Paris time',
    )


def test_timestamps_off_the_training_grid_are_refused():
    "An hourly model trained on whole hours refuses :30 (a shifted clock is not guessed); each series its own grid."
    st = WindowState('ds', ['y'], ['y'], L, 3, 'h', [0.0], [1.0], anchor='2016-07-01T00:00:00')
    on = [f'2020-01-01T0{i}:00:00' for i in range(L)]
    assert check_arrays(st, on, {'y': [1.0] * L}).times[0] == np.datetime64('2020-01-01T00:00')
    off = [f'2020-01-01T0{i}:30:00' for i in range(L)]
    refused(
        lambda: check_arrays(st, off, {'y': [1.0] * L}), 'history[0].ds', "off the model's grid", '2016-07-01 00:00'
    )
    paris = WindowState(
        'ds', ['y'], ['y'], L, 3, 'D', [0.0], [1.0], time_zone='Europe/Paris', anchor='2016-01-01T00:00:00'
    )
    local = pd.date_range('2017-03-24', periods=L, freq='D', tz='Europe/Paris')  # local midnights across the change
    check_arrays(paris, [x.tz_convert('UTC').isoformat() for x in local], {'y': [1.0] * L})
    noon = [x.tz_convert('UTC').isoformat() for x in pd.date_range('2017-03-24 12:00', periods=L, tz='Europe/Paris')]
    refused(
        lambda: check_arrays(paris, noon, {'y': [1.0] * L}), 'history[0].ds', "off the model's grid", 'Europe/Paris'
    )
    st = state(long=True)
    st.series_anchor = ['2016-07-01T00:00:00', '2016-07-01T00:30:00']  # series b was recorded at half past
    ids = {'uid': ['a'] * L + ['b'] * L, 'y': [1.0] * 2 * L}
    series_tails(st, on + off, ids)
    refused(lambda: series_tails(st, on + on, ids), f'history[{L}].ds', "series 'b'", "off the model's grid")
