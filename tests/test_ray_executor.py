"""`--executor ray` on a local Ray cluster writes the same records (and, with --save-maps, the same maps
files) as the local executor."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import maps_store, records, runner

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_ray_and_local_executors_write_the_same_scores(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is part of the [ray] extra that CI installs")
    from benchmark.datasets.synthetic import write_clickme_shards

    write_clickme_shards(tmp_path / "ray-set", 10, n_shards=3, seed=3)
    common = dict(dataset=str(tmp_path / "ray-set"), models=["tv_resnet18"], batch_size=4, device="cpu",
                  weights="random", progress=False, save_maps=True)
    local = runner.run(runner.RunConfig(results_dir=tmp_path / "local", **common))
    assert local.outcomes[0].status == "ok", local.outcomes[0].error
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"ALIGNBENCH_CACHE": str(tmp_path / "cache")}})
    try:
        remote = runner.run(runner.RunConfig(results_dir=tmp_path / "ray", executor="ray", **common))
        # --limit 5 over shards of 4, 3 and 3 images: every part returns up to 5 rows and maps, and the
        # driver keeps the first 5 of both
        limited = runner.run(runner.RunConfig(results_dir=tmp_path / "ray-limit", executor="ray", limit=5, **common))
    finally:
        ray.shutdown()
    local_limited = runner.run(runner.RunConfig(results_dir=tmp_path / "local-limit", limit=5, **common))
    assert limited.outcomes[0].status == local_limited.outcomes[0].status == "ok"
    with maps_store.open_store(tmp_path / "local-limit", "ray-set", "tv_resnet18+random") as sa, \
            maps_store.open_store(tmp_path / "ray-limit", "ray-set", "tv_resnet18+random") as sb:
        assert sb.image_ids == sa.image_ids and len(sa.image_ids) == 5
        assert sb.matches(limited.outcomes[0].record["identity"])
        np.testing.assert_allclose(sb.get(sb.image_ids), sa.get(sa.image_ids), rtol=1e-5, atol=1e-8)
    assert remote.outcomes[0].status == "ok", remote.outcomes[0].error
    a = records.read_scores(tmp_path / "local" / "ray-set" / "tv_resnet18+random.scores.csv")
    b = records.read_scores(tmp_path / "ray" / "ray-set" / "tv_resnet18+random.scores.csv")
    assert list(a["image_id"]) == list(b["image_id"]) and len(a["image_id"]) == 10
    np.testing.assert_allclose(a["spearman"], b["spearman"], atol=1e-6)
    ra, rb = local.outcomes[0].record, remote.outcomes[0].record
    assert ra["spearman_mean"] == pytest.approx(rb["spearman_mean"], abs=1e-6)
    assert ra["weights_sha256"] == rb["weights_sha256"]
    # --save-maps: the workers' maps come back in row order, into the same store a local run writes
    with maps_store.open_store(tmp_path / "local", "ray-set", "tv_resnet18+random") as sa, \
            maps_store.open_store(tmp_path / "ray", "ray-set", "tv_resnet18+random") as sb:
        assert sb.image_ids == sa.image_ids == list(a["image_id"])
        assert sb.matches(rb["identity"]) and sa.matches(ra["identity"])
        np.testing.assert_allclose(sb.get(sb.image_ids), sa.get(sa.image_ids), rtol=1e-5, atol=1e-8)
    assert not (tmp_path / "ray" / "ray-set" / ".partial-maps" / "tv_resnet18+random").exists()
    assert (tmp_path / "ray" / "ray-set" / "_gallery.npz").is_file()
