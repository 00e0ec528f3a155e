"""Ray scale-out on a real local Ray cluster: 2 actors of 1 CPU each, the tiny model loaded from its folder.

One cluster for the whole module (starting Ray takes ~10-30 s on a shared 2-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ray  # a dev requirement: a missing Ray fails this module rather than skipping it

from attribot_core.examples import EXAMPLES
from attribot_core.runs import ModelCache, RunStore
from attribot_core.runs.backends import LocalBackend
from attribot_core.runs.batch import BatchSettings, run_batch
from attribot_core.runs.inputs import rows_from_records
from attribot_core.runs.store import owner_id

pytestmark = pytest.mark.ray
ATTRIBOT = str(Path(sys.executable).with_name("attribot"))


def rows(n_copies: int = 2):
    recs = []
    for c in range(n_copies):
        for e in EXAMPLES:
            recs.append({"id": f"{e.key}-{c}", "context": e.context, "question": e.question,
                         **({"response": "It was in 1874."} if c else {})})  # copy 0 generates its response
    recs.append({"id": "bad", "context": "", "question": "q"})
    return rows_from_records(recs)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs, started once; every RayBackend of the module joins it."""
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def settings(tiny_model_dir):
    return BatchSettings(model=str(tiny_model_dir), method="hierarchical", params=(("keep_paragraphs", 2),),
                         max_new_tokens=12)


def test_ray_actors_give_results_identical_to_the_local_executor(cluster, tmp_path, settings, tiny_lm):
    import torch

    from attribot_core.runs.backends import RayBackend

    # a database each: both generate every response (one store would hand the second its stored responses,
    # and a run that generated its answer starts exact LOO from generation's keys, a known answer does not)
    store, local_store = RunStore(tmp_path / "ray.db"), RunStore(tmp_path / "local.db")
    threads = torch.get_num_threads()
    try:  # the same thread count as each actor: float sums then happen in the same order
        local = run_batch(local_store, "local", rows(), settings, LocalBackend(ModelCache(), threads=1))
    finally:
        torch.set_num_threads(threads)
    with RayBackend(workers=2, threads=1) as backend:
        info = backend.info()
        remote = run_batch(store, "ray", rows(), settings, backend)
    assert len({i["pid"] for i in info}) == 2 and {i["threads"] for i in info} == {1}
    assert (remote.done, remote.failed) == (local.done, local.failed) == (len(EXAMPLES) * 2, 1)
    by_local = {r.row_id: r for r in local_store.list(batch="local")}
    for run in store.list(batch="ray"):
        twin = by_local[run.row_id]
        assert run.status == twin.status and run.error == twin.error
        if run.result is None:
            continue
        a, b = run.result, twin.result
        assert (a.response, a.log_prob_full, a.scores(), a.scores("paragraph"), a.forward_passes) == \
            (b.response, b.log_prob_full, b.scores(), b.scores("paragraph"), b.forward_passes)
        assert run.owner == owner_id()  # stored by the driver: the actors never touch the database
    generated = store.generated(settings.model, EXAMPLES[0].context, EXAMPLES[0].question, 12)
    assert generated is not None and generated.token_ids  # an actor's generated ids, kept by the driver


def test_the_batch_command_joins_a_running_cluster(cluster, tmp_path, tiny_model_dir):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": e.key, "context": e.context, "question": e.question,
                                          "response": "In 1874."}) + "\n" for e in EXAMPLES), encoding="utf-8")
    proc = subprocess.run([ATTRIBOT, "batch", str(source), "--model", str(tiny_model_dir), "--db",
                           str(tmp_path / "r.db"), "--ray", cluster, "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Ray: 2 actor(s) of 1 thread(s) on" in proc.stderr
    assert f"batch 'in': {len(EXAMPLES)} done, 0 failed" in proc.stdout
    assert ray.is_initialized()  # joining never shuts the cluster down
