"""Every TSFORGE_* setting is checked once, at start: a bad value stops the server with one line naming the variable
and what it expects (in-process for each value, a real uvicorn for the refusal to start); the model allow-list
matches names exactly."""

import subprocess

import pytest

from conftest import ROOT, free_port, uvicorn_cmd
from tsforge.reload import model_allowed
from tsforge.settings import Settings, SettingsError

BAD = [
    ('TSFORGE_RELOAD_S', 'abc', 'a number of seconds >= 0.1 and <= 86400, or 0 (off)'),
    ('TSFORGE_RELOAD_S', '0.001', "or 0 (off), got '0.001'"),  # a registry check every millisecond
    ('TSFORGE_RELOAD_S', 'inf', "got 'inf'"),
    ('TSFORGE_RELOAD_S', '1e300', '<= 86400'),
    ('TSFORGE_RELOAD_S', 'nan', "got 'nan'"),
    ('TSFORGE_RELOAD_S', '-1', '>= 0'),
    ('TSFORGE_RETRY_S', '-1', 'a number of seconds >= 0.1'),
    ('TSFORGE_RETRY_S', '0', '>= 0.1'),
    ('TSFORGE_MAX_BODY_BYTES', '10MB', 'an integer of bytes >= 1'),
    ('TSFORGE_MAX_BODY_BYTES', '-1', '>= 1'),
    ('TSFORGE_MAX_ROWS', '0', 'an integer of records >= 1'),
    ('TSFORGE_MAX_ROWS', '1.9', "got '1.9'"),
    ('TSFORGE_MAX_ROWS', 'nan', 'TSFORGE_MAX_ROWS: expected an integer'),
    ('TSFORGE_BODY_TIMEOUT_S', 'ten', 'a number of seconds >= 0.1 and <= 3600'),
    ('TSFORGE_BODY_TIMEOUT_S', '1e-300', "got '1e-300'"),  # every body would time out
    ('TSFORGE_BODY_TIMEOUT_S', '-3', '>= 0.1'),
    ('TSFORGE_INLINE_MS', 'x', 'a number of milliseconds >= 0'),
    ('TSFORGE_CHECK_TIMEOUT_S', '0', '>= 0.1'),
    ('TSFORGE_CHECK_RETRIES', '2.7', 'an integer of retries >= 0 and <= 100'),
    ('TSFORGE_ADAPTIVE_GAMMA', 'abc', '> 0 and <= 1'),
    ('TSFORGE_ADAPTIVE_MAX_ISSUED', '0', '>= 1'),
    (
        'TSFORGE_ADAPTIVE_GAMMA',
        '0.5',
        "unset while TSFORGE_ADAPTIVE is off (nothing reads it), got '0.5'",
    ),  # was ignored
    ('TSFORGE_API_TOKEN', ' s3cret', 'without spaces'),
    ('TSFORGE_API_TOKEN', 's3cret\n', 'a trailing newline?'),
    ('TSFORGE_API_TOKEN', 's3 cret', 'without spaces'),
    ('TSFORGE_API_TOKEN', '', 'got an empty value; unset the variable to serve without auth'),
    ('TSFORGE_ALLOWED_MODELS', ' , ', "got ' , ' (no entry); unset the variable to allow any model"),
    ('TSFORGE_ALLOWED_MODELS', '', 'comma separated model names or URIs'),
    ('TSFORGE_MODEL', '   ', 'a model URI'),
    ('TSFORGE_MODEL', 'models:/x@', "got 'models:/x@': nothing after @ (name an alias)"),
    ('TSFORGE_MODEL', 'not a uri', 'neither a URI with a scheme nor a path'),
    ('TSFORGE_MODEL', 'models:/x@latest', "'latest': an alias is 1 to 255 letters"),
    ('TSFORGE_MODEL', 'models:/x/0', 'the version after / is a number from 1 or latest'),
    ('TSFORGE_MODEL', 'models:/x', 'names neither an alias (@ALIAS) nor a version (/VERSION)'),
    ('TSFORGE_MODEL', 'runs:/abc', 'runs:/ needs a run id and the artifact path'),
    ('TSFORGE_ALLOWED_MODELS', 'a, ,b', "got 'a, ,b' (entry 2 of 3 is blank"),
    ('TSFORGE_RELOAD_S', '1_000', "got '1_000'"),
    ('TSFORGE_MAX_ROWS', '\u0661\u0660\u0660', 'an integer of records'),  # Arabic-Indic digits
    ('TSFORGE_CHECK_TIMEOUT_S', '\uff15', 'a number of seconds'),  # a fullwidth 5
    ('TSFORGE_MAX_BODY_BYTES', '0x10', 'an integer of bytes'),
]


@pytest.mark.parametrize('name,value,expected', BAD, ids=[f'{n}={v!r}' for n, v, _ in BAD])
def test_bad_setting_is_refused_by_name(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as e:
        Settings.from_env()
    assert str(e.value).startswith(f'{name}: expected ') and expected in str(e.value), str(e.value)
    if name == 'TSFORGE_API_TOKEN':
        assert 's3' not in str(e.value)  # a secret is never echoed


def test_good_settings_and_defaults(monkeypatch):
    for k in [n for n, _, _ in BAD]:
        monkeypatch.delenv(k, raising=False)
    s = Settings.from_env()
    assert (s.reload_s, s.max_rows, s.max_body_bytes, s.check_retries, s.api_token) == (30.0, 50_000, 8 << 20, 1, None)
    env = {'TSFORGE_RELOAD_S': '0', 'TSFORGE_MAX_ROWS': '5000', 'TSFORGE_CHECK_RETRIES': '0', 'TSFORGE_INLINE_MS': ''}
    for k, v in {**env, 'TSFORGE_API_TOKEN': 'a-b.c_d~1/+='}.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert (s.reload_s, s.max_rows, s.check_retries, s.inline_ms, s.api_token) == (0, 5000, 0, 2.0, 'a-b.c_d~1/+=')
    assert isinstance(s.max_rows, int) and isinstance(s.check_retries, int)
    for k, v in {
        'TSFORGE_MODEL': ' models:/m@champion ',
        'TSFORGE_RELOAD_S': '+1.5e1',
        'TSFORGE_MAX_ROWS': ' 12 ',
    }.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert (s.model, s.reload_s, s.max_rows) == ('models:/m@champion', 15.0, 12)


@pytest.mark.parametrize(
    'uri',
    [
        'models:/m/3',
        'models:/m/latest',
        'models:/m-0123456789abcdef0123456789abcdef',
        'runs:/abc123/model',
        's3://bucket/model',
        'file:///srv/model',
    ],
)
def test_model_uris_accepted(monkeypatch, uri):
    monkeypatch.setenv('TSFORGE_MODEL', uri)
    assert Settings.from_env().model == uri


def test_default_alias_is_an_alias(monkeypatch):
    from tsforge.multimodel import CacheSettings

    for bad in ('latest', 'v3', 'a b'):
        monkeypatch.setenv('TSFORGE_DEFAULT_ALIAS', bad)
        with pytest.raises(SettingsError, match=f"^TSFORGE_DEFAULT_ALIAS: expected an alias name, got '{bad}'"):
            CacheSettings.from_env()
    monkeypatch.setenv('TSFORGE_DEFAULT_ALIAS', 'staging')
    assert CacheSettings.from_env().default_alias == 'staging'


def test_check_timeout_rounds_up(monkeypatch):
    "MLflow reads its timeout as an integer: never below the seconds asked for."
    for k in ('MLFLOW_HTTP_REQUEST_TIMEOUT', 'MLFLOW_HTTP_REQUEST_MAX_RETRIES', 'MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR'):
        monkeypatch.setenv(k, '0')  # recorded, so what bound_mlflow_requests sets is undone afterwards
        monkeypatch.delenv(k)
    for given, want in (('2.5', '3'), ('0.2', '1'), ('2', '2')):
        monkeypatch.delenv('MLFLOW_HTTP_REQUEST_TIMEOUT', raising=False)
        monkeypatch.setenv('TSFORGE_CHECK_TIMEOUT_S', given)
        assert Settings.from_env().bound_mlflow_requests()['MLFLOW_HTTP_REQUEST_TIMEOUT'] == want


def test_bad_config_is_one_settings_error(monkeypatch):
    from tsforge.settings import default_model_uri

    monkeypatch.delenv('TSFORGE_MODEL', raising=False)
    monkeypatch.setenv('TSFORGE_CONFIG', 'nope')
    with pytest.raises(SettingsError, match="^TSFORGE_CONFIG: expected an experiment .* got 'nope': ConfigError"):
        default_model_uri()


@pytest.mark.parametrize(
    'env',
    [
        {'TSFORGE_RELOAD_S': 'inf'},
        {'TSFORGE_API_TOKEN': 'tok\n'},
        {'TSFORGE_CONFIG': 'nope', 'TSFORGE_MODEL': None},
        {'TSFORGE_API_TOKEN_FILE': 'no-such-token-file'},
        {'TSFORGE_MODEL': 'models:/x@'},
    ],
)
def test_server_refuses_to_start(env):
    "A real uvicorn: exits at once with one line naming the variable (no traceback), before it listens."
    import os

    r = subprocess.run(
        uvicorn_cmd(free_port()),
        cwd=ROOT,
        env={
            k: v
            for k, v in {**os.environ, 'TSFORGE_MODEL': 'models:/never-loaded@champion', **env}.items()
            if v is not None
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    name = next(iter(env))
    assert r.returncode != 0, r.stderr[-2000:]
    assert f'tsforge: refusing to start: {name}: expected' in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]


def test_allow_list_matches_names_exactly():
    allowed = ['models:/tsforge-etth1', 'sales', 'models:/team-a-*', 'runs:/abc/model']
    for uri in ['models:/tsforge-etth1', 'models:/tsforge-etth1@champion', 'models:/tsforge-etth1/3']:
        assert model_allowed(uri, allowed), uri
    for uri in ['models:/sales@champion', 'models:/sales/latest', 'models:/team-a-x@champion', 'runs:/abc/model']:
        assert model_allowed(uri, allowed), uri
    for uri in [
        'models:/tsforge-etth1-evil@champion',
        'models:/tsforge-etth10',
        'models:/sales-eu@champion',
        'models:/team-b@champion',
        'runs:/abc/model2',
        'models:/m-123',
    ]:
        assert not model_allowed(uri, allowed), uri
    assert model_allowed('models:/anything', [])


@pytest.mark.parametrize(
    'env,expected',
    [
        ({'TSFORGE_HEARTBEAT_S': '0'}, 'TSFORGE_HEARTBEAT_S: expected a number of seconds >= 0.1'),
        ({'TSFORGE_HEARTBEAT_S': '0.001'}, 'TSFORGE_HEARTBEAT_S: expected a number of seconds >= 0.1'),
        (
            {'TSFORGE_HEARTBEAT_S': 'abc'},
            "TSFORGE_HEARTBEAT_S: expected a number of seconds >= 0.1 and <= 86400, got 'abc'",
        ),
        ({'TSFORGE_HEARTBEAT_GRACE_S': '0'}, 'TSFORGE_HEARTBEAT_GRACE_S: expected a number of seconds > 30'),
        ({'TSFORGE_HEARTBEAT_GRACE_S': 'inf'}, 'TSFORGE_HEARTBEAT_GRACE_S: expected'),
        (
            {'TSFORGE_HEARTBEAT_S': '10', 'TSFORGE_HEARTBEAT_GRACE_S': '5'},
            'TSFORGE_HEARTBEAT_GRACE_S: expected a number of seconds > 10',
        ),
    ],
)
def test_bad_heartbeat_is_refused_by_name_not_swallowed(monkeypatch, env, expected):
    "A job refuses to start (before touching the store) instead of reconcile marking live runs FAILED."
    from tsforge.config import load_config
    from tsforge.runs import heartbeat_grace, start_run

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=expected):
        heartbeat_grace()
    with pytest.raises(SettingsError, match=expected):
        with start_run(load_config('etth1', ['model=naive'])):
            pass


def test_good_heartbeat(monkeypatch):
    from tsforge.runs import heartbeat_grace, heartbeat_seconds

    monkeypatch.delenv('TSFORGE_HEARTBEAT_GRACE_S', raising=False)
    monkeypatch.setenv('TSFORGE_HEARTBEAT_S', '2.5')
    assert (heartbeat_seconds(), heartbeat_grace()) == (2.5, 12.5)


def test_token_file_is_checked_at_start(monkeypatch, tmp_path):
    "TSFORGE_API_TOKEN_FILE: a readable file of one or more valid tokens, or the server does not start."
    f = tmp_path / 'tokens'
    monkeypatch.setenv('TSFORGE_API_TOKEN_FILE', str(f))
    for content, want in [
        (None, 'a readable file of bearer tokens, got No such file or directory'),
        (b'', 'got none'),  # an emptied file would turn auth off: refused
        (b'\n\r\n', 'got none'),
        (b'tok-1\nsecret two\n', r'got 10 bytes with whitespace, control or non-ASCII characters \(.*tokens, line 2\)'),
        (b'caf\xc3\xa9\n', 'line 1'),
        (b'x' * 70_000, 'more than 65536 bytes'),
    ]:
        if content is not None:
            f.write_bytes(content)
        with pytest.raises(SettingsError, match='^TSFORGE_API_TOKEN_FILE: expected .*' + want) as e:
            Settings.from_env()
        assert 'secret' not in str(e.value) and 'caf' not in str(e.value)
    f.write_bytes(b'tok-1\r\n\ntok-2\n')
    assert Settings.from_env().api_token_file == str(f)
    monkeypatch.setenv('TSFORGE_API_TOKEN', 'tok-3')
    with pytest.raises(SettingsError, match='^TSFORGE_API_TOKEN_FILE: .* TSFORGE_API_TOKEN is set too; unset one'):
        Settings.from_env()
    monkeypatch.delenv('TSFORGE_API_TOKEN')
    monkeypatch.setenv('TSFORGE_API_TOKEN_FILE', '  ')
    with pytest.raises(SettingsError, match='got an empty value; unset the variable to serve without auth'):
        Settings.from_env()


def test_token_file_rotation(tmp_path, caplog):
    "Tokens follow the file (checked every check_s): overlap, rotate; a broken file keeps the last good tokens, loudly."
    import os

    from tsforge.settings import ApiTokens

    f = tmp_path / 'tokens'
    f.write_text('old-token\n')
    tokens = ApiTokens(path=str(f), check_s=0)

    def swap(text):  # as a secret mount rotates: a new file moved into place
        (tmp_path / 'new').write_text(text)
        os.replace(tmp_path / 'new', f)

    def accepted():
        return [t for t in ('old-token', 'new-token') if tokens.accepts(t.encode())]

    assert tokens.on and accepted() == ['old-token'] and not tokens.accepts(b'old-toke')
    swap('old-token\r\nnew-token\n')
    assert accepted() == ['old-token', 'new-token']
    swap('new-token\n')
    assert accepted() == ['new-token']
    with caplog.at_level('WARNING', 'tsforge.serve'):
        swap('')
        assert accepted() == ['new-token'] and 'got none' in tokens.error
        f.unlink()
        assert accepted() == ['new-token'] and 'No such file' in tokens.error
        swap('newer-token\n')
        assert tokens.accepts(b'newer-token') and accepted() == [] and tokens.error is None
    logs = [r.getMessage() for r in caplog.records]
    assert sum('the last good token(s) stay in effect' in m for m in logs) == 2, logs
    assert not any('new-token' in m for m in logs)
    assert not ApiTokens().on and ApiTokens('t').accepts(b't')
