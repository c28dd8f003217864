"""MLflow on a real PostgreSQL (pgserver), with the URL written as users write it: a bare `postgresql://...`
(SQLAlchemy 2.1 reads it as psycopg 3, which tsforge installs), as MLFLOW_TRACKING_URI of the job itself, with no
server. As the backend of `mlflow server`, with the train job logging and registering through the server and a server
elsewhere loading the model through it: tests/test_multinode.py (the whole deployment layout)."""

import pytest
from mlflow import MlflowClient

from conftest import column, papermill, pg_database

pytestmark = pytest.mark.slow


def test_bare_postgresql_url_means_psycopg3():
    import sqlalchemy

    assert sqlalchemy.engine.make_url('postgresql://u:p@127.0.0.1/db').get_dialect().driver == 'psycopg'
    import psycopg  # noqa: F401  (installed with tsforge: the driver a bare URL needs)


def test_job_with_bare_postgresql_tracking_uri(postgres, tiny, tmp_path):
    url = pg_database(postgres)
    r = papermill(
        'train.ipynb',
        tmp_path / 'out.ipynb',
        'etth1',
        [*tiny, 'model=naive', 'registry.model_name=tsforge-pgdirect'],
        env={'MLFLOW_TRACKING_URI': url},
        cwd=tmp_path,  # a client with a database URL keeps artifacts under ./mlruns (MLflow's default artifact root)
    )
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    mv = client.get_model_version_by_alias('tsforge-pgdirect', 'champion')
    assert client.get_run(mv.run_id).info.status == 'FINISHED'
    assert mv.run_id in column(url, 'SELECT run_uuid FROM runs')
