"""The benchmark's workloads are what DESIGN.md section 6 says: RW-2's repository is realistic
(300 files, about 3 MB), the same every run, and within what one submission may carry."""

from __future__ import annotations

import json

from contracts.repos import path_problem
from libs.bench.rw1 import ONE_FILE, realistic_repository, task_body
from services.gateway.app import MAX_BODY_BYTES


def test_rw2s_repository_is_300_files_of_about_3_mb_and_the_same_each_time() -> None:
    repository = realistic_repository()

    assert len(repository) == 300
    assert 2_900_000 <= sum(len(content.encode()) for content in repository.values()) <= 3_100_000
    assert repository == realistic_repository()
    assert all(path_problem(path) is None for path in repository)


def test_each_workloads_task_is_one_submission_the_gateway_takes() -> None:
    for files in (ONE_FILE, realistic_repository()):
        body = task_body(7, "run", files)
        assert len(json.dumps(body).encode()) < MAX_BODY_BYTES
        assert body["tasks"][0]["repo"]["branch"] != body["tasks"][0]["repo"]["baseBranch"]
