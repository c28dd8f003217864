"""No secret reaches the store (issue 16): a config value taken from the environment with `${oc.env:...}` is masked
everywhere a job logs the config; the whole store (database, artifacts, the bundle, the executed notebook) is then
searched for the secret. No secret reaches an answer, a log line or the console either: redaction and `masked_uri`
mask a URL's whole password (to the last '@' before the host), signed-URL parameters and Authorization values."""

import os, shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import papermill

SECRET = 'sekrit-d1r-7c4f2a'  # the secret part of the data folder's path


def hits(folder: Path, needle: str) -> list[str]:
    "Files under `folder` whose bytes contain `needle` (the SQLite database included)."
    out = []
    for p in folder.rglob('*'):
        if p.is_file() and needle.encode() in p.read_bytes():
            out.append(str(p.relative_to(folder)))
    return out


@pytest.mark.slow
def test_secret_from_environment_never_reaches_the_store(tmp_path):
    data = tmp_path / SECRET
    data.mkdir()
    shutil.copy(Path(os.environ['TSFORGE_DATA_DIR']) / 'ETTh1.csv', data / 'ETTh1.csv')
    home = tmp_path / 'store'
    env = {'TSFORGE_HOME': str(home), 'TSFORGE_SECRET_DATA': str(data)}
    overrides = [
        'model=naive',
        'input_length=24',
        'horizon=24',
        'data.dataset=null',
        "data.path='${oc.env:TSFORGE_SECRET_DATA}/ETTh1.csv'",
        'registry.model_name=tsforge-secret',
    ]
    out = tmp_path / 'out.ipynb'
    r = papermill('train.ipynb', out, 'etth1', overrides, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    uri = f'sqlite:///{home / "mlflow.db"}'
    client = MlflowClient(uri, uri)
    mv = client.get_model_version_by_alias('tsforge-secret', 'champion')
    run = client.get_run(mv.run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.params['data.path'] == '${oc.env:TSFORGE_SECRET_DATA}/ETTh1.csv'
    names = [f.path for f in client.list_artifacts(mv.run_id)]
    assert 'notebook' in names and 'config.yaml' in names
    assert hits(home, SECRET) == []
    assert hits(home, str(data)) == []


LEAKY = [  # (text, what must not survive)
    ('registry check of http://alice:Pw@Secret42@127.0.0.1:18599 failed', ['Pw', 'Secret42']),
    ('https://user:pa/ss@h/x', ['pa/ss', 'pa']),
    ('https://tok@en@host/x', ['tok', 'en@']),
    ('http://a@b:c@d@host:1/api', ['a@b', 'c@d']),
    (
        'https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Credential=AKIAX%2F1&X-Amz-Signature=f00d1e',
        ['AKIAX', 'f00d1e'],
    ),
    ('https://h/x?x-amz-security-token=tok9&api_key=key9&apikey=key8', ['tok9', 'key9', 'key8']),
    ("sent {'Authorization': 'Bearer abcdefgh12345'}", ['abcdefgh12345']),
    ('Authorization: Basic dXNlcjpwdw==', ['dXNlcjpwdw']),
    ('authorization=tok-only-123', ['tok-only-123']),
    ('upstream said: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x', ['eyJhbGci']),
]


@pytest.mark.parametrize('text,secrets', LEAKY, ids=[t[:40] for t, _ in LEAKY])
def test_redact_leaves_nothing_of_a_credential(text, secrets):
    from tsforge.guard import redact

    out = redact(text)
    assert '<redacted>' in out, out
    for s in secrets:
        assert s not in out, (s, out)


def test_redact_keeps_what_is_not_a_credential():
    from tsforge.guard import redact

    for text in ['missing or invalid bearer token', 'see http://h/api?email=a@b', 'http://127.0.0.1:5000']:
        assert redact(text) == text
    # ambiguous (a password holding '/' or a port then a path with '@'): masked, never the other way round
    assert redact('see http://h:5000/api?email=a@b') == 'see http://<redacted>@b'


def test_masked_uri_masks_the_whole_password():
    from tsforge.store import masked_uri, store_failure

    assert masked_uri('http://alice:Pw@Secret42@127.0.0.1:18599') == 'http://alice:***@127.0.0.1:18599'
    assert masked_uri('postgresql://u:Pw@Secret42@h:5432/db') == 'postgresql://u:***@h:5432/db'  # not SQLAlchemy's
    assert masked_uri('https://u:pa/ss@h/x') == 'https://u:***@h/x'
    assert masked_uri('https://host/path') == 'https://host/path'
    uri = 'http://alice:Pw@Secret42@127.0.0.1:1'
    msg = str(store_failure(ConnectionError(f'refused: {uri} (password Pw@Secret42)'), uri))
    assert 'Secret42' not in msg and 'Pw' not in msg and 'alice:***@127.0.0.1:1' in msg, msg


def test_reconcile_command_prints_the_uri_without_its_password(monkeypatch, capsys):
    from tsforge import runs

    monkeypatch.setattr(runs, 'tracking_uri', lambda: 'http://alice:Pw@Secret42@127.0.0.1:18599')
    monkeypatch.setattr(runs, 'reconcile', lambda *a: [])
    runs.main(['reconcile'])
    out = capsys.readouterr().out
    assert out.startswith('http://alice:***@127.0.0.1:18599: 0 dead run(s)') and 'Secret42' not in out, out
