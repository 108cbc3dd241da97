"""Several processes: the process-group helpers, and DDP equivalence (2 gloo ranks x 32 == 1 x 64)."""

import pytest
import torch
from fixtures.ddp_equivalence import ddp_weights, without_batchnorm

from spherereid.modeling.net import ReIDNet
from spherereid.training import distributed
from spherereid.training.distributed import DistContext, DistributedError


def test_outside_torchrun_everything_is_a_single_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.setup("cpu")
    assert ctx == DistContext(device=torch.device("cpu")) and ctx.is_main and not ctx.distributed
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net, ctx) is net
    assert distributed.all_sum([1.5, 2], ctx) == [1.5, 2.0] and distributed.all_max([3, -1], ctx) == [
        3.0,
        -1.0,
    ]
    assert distributed.all_gather({"a": 1}, ctx) == [{"a": 1}]
    distributed.teardown(ctx)


def test_bad_environment_and_device_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="WORLD_SIZE='two' is not an integer"):
        distributed.setup("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not usable"):
            distributed.device_for("cuda", local_rank=1, world_size=2)
        monkeypatch.setenv("SPHEREREID_REQUIRE_CUDA", "1")  # a GPU task: 'auto' must not fall back to cpu
        with pytest.raises(ValueError, match="CUDA is not usable"):
            distributed.device_for("auto", local_rank=0, world_size=2)
    with pytest.raises(DistributedError, match="SyncBatchNorm|sync_batchnorm"):
        ctx = DistContext(rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
        distributed.wrap(torch.nn.BatchNorm1d(2), ctx, sync_batchnorm=True)


def test_a_rank_that_cannot_reach_the_others_fails_within_the_timeout(monkeypatch):
    """Rank 1 of 2 waits for a rank 0 that never comes: an error naming the fix, not a hang."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")  # nothing listens there
    monkeypatch.setenv("TORCH_DIST_INIT_BARRIER", "0")
    with pytest.raises(DistributedError, match="cannot join the gloo process group.*torchrun"):
        distributed.setup("cpu", timeout_s=2)


@pytest.mark.slow
def test_two_gloo_ranks_of_32_images_give_the_weights_of_one_process_of_64(tmp_path):
    one = ddp_weights(tmp_path / "one.pt", 1)
    two = ddp_weights(tmp_path / "two.pt", 2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["steps"] == two["steps"] == 6, "the same number of steps on any world size"
    assert one["state"].keys() == two["state"].keys()
    worst = max(float((one["state"][k] - two["state"][k]).abs().max()) for k in one["state"])
    assert worst < 1e-5, f"weights differ by {worst}"
    # the comparison is meaningful: training moved the weights far more than the tolerance
    torch.manual_seed(0)
    init = without_batchnorm(ReIDNet(backbone="tiny", head="B", embedding_dim=16, dropout=0.0)).state_dict()
    moved = max(float((one["state"][f"net.{k}"] - v).abs().max()) for k, v in init.items())
    assert moved > 1e-2


@pytest.mark.slow
def test_two_ranks_agree_on_epoch_figures_and_on_the_first_non_finite_step(tmp_path):
    import json
    import socket

    import torch.multiprocessing as mp
    from fixtures.ddp_collectives import worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn")
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0] == results[1], "every rank sees the same figures"
    got = results[0]
    # (8 x 1.0 + 24 x 3.0) / 32 = 2.5; (8 x 0.5 + 24 x 0.25) / 32 = 10 / 32; the slowest rank's 2 s
    assert got["total"] == [2.5, 10 / 32, 32, 2.0, 0.1]
    assert got["first_bad"] == 2, "the earliest non-finite step of any rank"
    assert got["maxima"] == [24.0, -1.0], "element-wise maximum over both ranks"
    assert got["gathered"] == [0, 10]
