"""Data-parallel runs under torchrun with 2 processes on the CPU (gloo): the collectives alone, with
a fake rank and with 2 real ranks, every rank's decisions in tiny searches (pc-darts' and dcp's
architecture parameters after every step), search and training end to end, one event log, kill -9
of the job and Ctrl-C then --resume (under torchrun and alone), a killed rank, the bad combinations
that end in one line, and ablate's and correlate's units dealt over the ranks."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from cpnas_cli.config import load_config
from cpnas_cli.engine.run.distributed import SOLO, World, config_digest, step_digest
from cpnas_cli.engine.search.strategies.dcp.tangent import child_arch_gradient
from cpnas_cli.events import read_all
from tests.cli import ENV, KILL_SEED, run_cli, set_flags, wait_for
from tests.ddp_runs import (
    DDP_SEARCH,
    DDP_TRAIN,
    DECISIONS,
    TIMING,
    error_lines,
    rank_pid,
    run_torchrun,
    search_args,
    start_torchrun,
)
from tests.tiny_runs import run_states, samples, structure

# --- the collectives, without a process group ------------------------------------------------


def test_alone_every_collective_is_the_identity():
    x, y = torch.arange(12.0).view(6, 2), torch.arange(6)
    assert [t.tolist() for t in next(iter(SOLO.share([(x, y)])))] == [x.tolist(), y.tolist()]
    assert list(SOLO.deal(range(5))) == [0, 1, 2, 3, 4]
    values = {"n": 3, "roles": {"child": {"loss": 1.5, "seconds": 0.2}}}
    assert SOLO.sum(values) is values and SOLO.mean({"loss": 2.0}, 7) == (7, {"loss": 2.0})
    assert SOLO.agree(True) and not SOLO.agree(False)
    assert SOLO.on_main(lambda: 42) == 42 and SOLO.gather("a") == ["a"] and SOLO.broadcast("b") == "b"
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([0.5, 0.25])
    SOLO.average_gradients([p], 3)
    assert p.grad.tolist() == [0.5, 0.25]


def test_a_rank_takes_its_rows_of_every_batch_and_whole_eval_batches_in_turn():
    third = World(rank=1, size=3)
    x, y = torch.arange(14.0).view(7, 2), torch.arange(7)
    xs, ys = next(iter(third.share([(x, y)])))
    assert ys.tolist() == [3, 4] and xs.tolist() == [[6.0, 7.0], [8.0, 9.0]]  # 7 rows: 3, 2, 2
    assert list(third.deal(range(8))) == [1, 4, 7]


def test_a_pass_remainder_smaller_than_the_world_is_left_out():
    # 250 images in batches of 60: 4 full batches and 10 left, enough for 8 ranks, not for 16
    assert World(rank=0, size=8).trainable(250, 60) == 250
    assert World(rank=0, size=16).trainable(250, 60) == 240
    assert World(rank=0, size=16).trainable(240, 60) == 240 and SOLO.trainable(241, 60) == 241


def test_the_step_digest_ignores_timings_and_sees_every_bit():
    events = [{"kind": "sample", "n": 1, "acc_child": 20.5, "seconds": 1.0, "t": 5.0}]
    weights = {"w": torch.tensor([1.0, 2.0])}
    same = step_digest([{**events[0], "seconds": 9.0, "t": 7.0}], {"w": torch.tensor([1.0, 2.0])})
    assert step_digest(events, weights) == same
    flipped = torch.tensor([1.0, 2.0])
    flipped.view(torch.int32)[1] ^= 1  # the last bit of one weight
    assert step_digest(events, {"w": flipped}) != same
    assert step_digest([{**events[0], "acc_child": 20.6}], weights) != same


def test_the_config_digest_tells_configurations_apart():
    a, b = load_config("quick"), load_config("quick")
    assert config_digest(a) == config_digest(b) and config_digest(a, [1]) != config_digest(a, [2])
    b.seed += 1
    assert config_digest(a) != config_digest(b)


def test_the_exact_hessian_of_a_rank_is_the_one_process_formula():
    """The distributed form takes H (g - t) as a Hessian-vector product; with one rank (the mean
    over ranks is the identity) it gives the hand-worked value of the plain one."""
    alpha = {"normal": torch.tensor([0.5, -0.5], requires_grad=True)}
    a = alpha["normal"]
    A, b = torch.tensor([[2.0, 1.0], [1.0, 3.0]]), torch.tensor([1.0, -1.0])
    G = b @ a - 0.5 * a @ A @ a
    t = {"normal": torch.tensor([0.0, 1.0])}
    grads, logged = child_arch_gradient(G, alpha, t, 0.1, "exact", average=lambda g: g)
    # -g + 2 lam (-A)(g - t), g = (0.5, 0), g - t = (0.5, -1): (-0.5, 0) - 0.2 (0, -2.5) = (-0.5, 0.5)
    assert grads["normal"].tolist() == pytest.approx([-0.5, 0.5])
    assert logged["tangent_distance"] == pytest.approx(1.25)


def test_an_ablations_units_are_dealt_round_robin_and_collected_on_rank_0(tmp_path, monkeypatch):
    from cpnas_cli.engine.ablation import make_plan
    from cpnas_cli.engine.ablation.results import UnitResult, read_results
    from cpnas_cli.engine.ablation.runner import Ablation

    plan = make_plan(["cp", "random"], None, 2, 0)  # 4 units: cp-0, random-0, cp-1, random-1
    mailbox: dict[str, str] = {}
    ran: dict[int, list] = {0: [], 1: []}

    class Rank(World):
        def broadcast(self, value):
            return value

        def post(self, key, text):
            mailbox[key] = text

        def posted(self, keys):
            return {k: mailbox[k] for k in keys if k in mailbox}

    def unit(self, setting, seed):
        ran[self.world.rank].append((setting.label, seed))
        return UnitResult(
            setting.label, seed, setting.strategy, None, "g", 0, 1.0, 1.0, 50.0, None, 0, 0, 0, 0.0, 0.0, "s", "t"
        )

    monkeypatch.setattr(Ablation, "_unit", unit)
    base = load_config("quick")
    Ablation(tmp_path, base, plan, world=Rank(rank=1, size=2)).run()
    assert ran[1] == [("random", 0), ("random", 1)] and sorted(mailbox) == ["ablation/1", "ablation/3"]
    assert not (tmp_path / "results.json").exists()  # only rank 0 writes
    results = Ablation(tmp_path, base, plan, world=Rank(rank=0, size=2)).run()
    assert ran[0] == [("cp", 0), ("cp", 1)]
    assert {(r.setting, r.seed) for r in results} == {("cp", 0), ("random", 0), ("cp", 1), ("random", 1)}
    assert sorted((r.setting, r.seed) for r in read_results(tmp_path)) == sorted((r.setting, r.seed) for r in results)


def test_a_correlations_supernets_and_trainings_are_dealt_round_robin(tmp_path, monkeypatch):
    """2 seeds of 3 architectures under 2 ranks (threads sharing one mailbox, as ranks share the
    job's store): each rank trains one seed's supernet and every other architecture; every rank
    gets both seeds' scores, rank 0 alone every row and the outputs."""
    import threading

    from cpnas_cli.engine.ablation.correlation import Correlation
    from cpnas_cli.engine.ablation.correlation_plan import make_plan

    plan = make_plan(3, [0.0, 2.0], 2, 0)
    mailbox: dict[str, str] = {}
    ran: dict[int, list] = {0: [], 1: []}
    trained_with: dict[int, list] = {0: [], 1: []}

    class Rank(World):
        def broadcast(self, value):
            return value

        def post(self, key, text):
            mailbox[key] = text

        def posted(self, keys):
            return {k: mailbox[k] for k in keys if k in mailbox}

        def silent_ranks(self):
            return set()

    def scores(self, seed):
        ran[self.world.rank].append(("supernet", seed))
        return {"architectures": [{"seed": seed, "i": i} for i in range(3)], "acc_child": [10.0 + seed] * 3}

    def train(self, seed, i, arch, scored):
        ran[self.world.rank].append((seed, i))
        trained_with[self.world.rank].append((arch, scored["acc_child"][i]))
        return {"seed": seed, "index": i, "acc_child": scored["acc_child"][i], "test_acc_child": 50.0 + i}

    monkeypatch.setattr(Correlation, "_scores", scores)
    monkeypatch.setattr(Correlation, "_train", train)
    monkeypatch.setattr(Correlation, "write_outputs", lambda self: (self.folder / f"rank{self.world.rank}").touch())
    studies = [Correlation(tmp_path, load_config("quick"), plan, world=Rank(rank=r, size=2)) for r in (0, 1)]
    threads = [threading.Thread(target=s.run) for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert ran == {
        0: [("supernet", 0), (0, 0), (0, 2), (1, 1)],  # units 0, 2, 4 of (0, 0), (0, 1), (0, 2), (1, 0), ...
        1: [("supernet", 1), (0, 1), (1, 0), (1, 2)],
    }
    assert ({"seed": 1, "i": 0}, 11.0) in trained_with[1]  # rank 1 trained with its own supernet's scores
    assert ({"seed": 0, "i": 1}, 10.0) in trained_with[1]  # and with seed 0's, which rank 0 computed
    rows = sorted((r["seed"], r["index"]) for r in studies[0].architectures)
    assert rows == [(s, i) for s in (0, 1) for i in range(3)] and studies[1].architectures == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0"]  # only rank 0 writes the outputs


# --- under torchrun ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny search of 2 ranks through the CLI, timed: (its run directory, the
    launcher's result, seconds)."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    started = time.perf_counter()
    result = run_torchrun(2, search_args(run_dir), timeout=600)
    assert result.returncode == 0, result.stderr
    return run_dir, result, time.perf_counter() - started


def test_two_ranks_average_gradients_weighted_by_images_and_keep_unused_ones_none(tmp_path):
    """Rank 0 has 3 images, rank 1 has 1: each gradient is the images-weighted mean, a rank without
    a gradient counting as zeros; one no rank has stays None (no optimizer step), as under DDP."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*launcher, "-m", "tests.ddp_runs", "--collectives", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    ranks = [json.loads((tmp_path / f"collectives-rank{r}.json").read_text()) for r in (0, 1)]
    # (3 [1, 2] + [5, 6]) / 4, (3 * 0 + [8, 0]) / 4, (3 [4, 4] + 0) / 4: exact in float32
    assert [r["grads"] for r in ranks] == [[[2.0, 3.0], [2.0, 0.0], [3.0, 3.0], None]] * 2
    assert [r["sum"] for r in ranks] == [
        {"n": 3, "losses": {"child": 0.5}, "seconds": 7.0},  # ints stay ints, timings stay the rank's
        {"n": 3, "losses": {"child": 0.5}, "seconds": 8.0},
    ]
    assert all(type(r["sum"]["n"]) is int for r in ranks)


@pytest.mark.e2e
def test_two_ranks_search_into_one_run_that_rank_0_writes(reference):
    run_dir, result, _ = reference
    events = read_all(run_dir / "events.jsonl")
    assert events[0]["kind"] == "header" and events[0]["world_size"] == 2
    assert [e["kind"] for e in events].count("header") == 1  # one log, written once
    assert [e["n"] for e in events if e["kind"] == "sample"] == [1, 2, 3, 4, 5]  # K = 3, 2: each sample once
    assert run_states(run_dir / "events.jsonl") == ["started", "finished"]
    # every sample trained on the whole global batch stream: 0.5 x 240 images
    assert {e["images"] for e in events if e["kind"] == "sample"} == {120}
    assert (run_dir / "genotype.json").is_file() and sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint",
        "config.yaml",
        "events.jsonl",
        "genotype.json",
        "writer.lock",
    ]
    assert result.stdout.count("cpnas search ") == 1 and result.stdout.count("Genotype:") == 1  # rank 0 alone
    assert "2 processes" in result.stdout.replace("\n", " ") and error_lines(result.stderr) == []


@pytest.mark.e2e
def test_every_rank_takes_every_decision_alike(tmp_path):
    """abandit (draws, rewards, pruning), pc-darts and dcp: each rank's events are the same, and
    the architecture logits are bit-identical on every rank after every iteration (nni#5013)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*launcher, "-m", "tests.ddp_runs", str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    for name in DECISIONS:
        ranks = [json.loads((tmp_path / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["events"] == ranks[1]["events"], name
        kinds = [e["kind"] for e in ranks[0]["events"]]
        assert kinds[-1] == "status" and ranks[0]["events"][-1]["state"] == "finished"
        if name == "abandit":
            assert "prune" in kinds and "ranking" in kinds
        else:
            assert len(ranks[0]["logits_equal"]) >= 4 and all(ranks[0]["logits_equal"]), name
            assert sum(e.get("arch_steps", 0) for e in ranks[0]["events"]) > 0
        log = read_all(tmp_path / name / "events.jsonl")  # rank 0's log holds what rank 1 saw
        assert [{k: v for k, v in e.items() if k not in TIMING} for e in log if e["kind"] == "alpha"] == [
            e for e in ranks[1]["events"] if e["kind"] == "alpha"
        ]


@pytest.mark.e2e
def test_kill_9_of_the_job_then_resume_with_the_same_world_gives_the_same_genotype(reference, tmp_path):
    ref_dir, _, ref_seconds = reference
    run_dir = tmp_path / "killed"
    proc = start_torchrun(2, search_args(run_dir))
    wait_for(lambda: (run_dir / "config.yaml").exists(), seconds=300)
    seed = int(os.environ.get(KILL_SEED) or random.SystemRandom().randrange(1_000_000))
    delay = random.Random(seed).uniform(0.0, ref_seconds * 0.8)
    print(f"kill -9 replay: seed={seed} after {delay:.3f}s; replay with {KILL_SEED}={seed}", flush=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.communicate()
    result = run_torchrun(2, ["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)  # every sample's numbers, once each, in order


@pytest.mark.e2e
def test_ctrl_c_under_torchrun_then_resume_alone(tmp_path):
    run_dir = tmp_path / "interrupted"
    proc = start_torchrun(2, search_args(run_dir))
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"sample"' in events.read_text(), seconds=300)
    proc.send_signal(signal.SIGINT)  # torchrun hands it to every rank; they stop at one batch
    out, err = proc.communicate(timeout=300)
    assert out.replace("\n", "").count(f"cpnas search --resume {run_dir}") == 1, out + err
    assert run_states(events)[-1] == "interrupted" and error_lines(err) == []
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    log = read_all(events)
    assert run_states(events) == ["started", "interrupted", "resumed", "finished"]
    assert log[0]["world_size"] == 2 and next(e for e in log if e.get("state") == "resumed")["world_size"] == 1
    assert [e["n"] for e in log if e["kind"] == "sample"] == [1, 2, 3, 4, 5]


@pytest.mark.e2e
def test_two_ranks_train_with_ddp(darts_v2_file, tmp_path):
    run_dir = tmp_path / "train"
    result = run_torchrun(2, ["train", str(darts_v2_file), "--run-dir", str(run_dir), *set_flags(DDP_TRAIN)])
    assert result.returncode == 0, result.stderr
    events = read_all(run_dir / "events.jsonl")
    assert events[0]["world_size"] == 2 and run_states(run_dir / "events.jsonl") == ["started", "finished"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and {e["images"] for e in epochs} == {160}  # the global batches
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "last.safetensors").is_file()
    assert result.stdout.count("cpnas train ") == 1 and error_lines(result.stderr) == []
    assert "Grad strides" not in result.stderr


@pytest.mark.e2e
def test_a_killed_rank_stops_the_other_within_the_timeout_with_one_line(tmp_path):
    run_dir = tmp_path / "lost"
    proc = start_torchrun(2, search_args(run_dir), env={"CPNAS_DIST_TIMEOUT": "60"})
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"sample"' in events.read_text(), seconds=300)
    os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
    killed = time.perf_counter()
    _out, err = proc.communicate(timeout=120)
    assert time.perf_counter() - killed < 60  # the timeout: a dead peer is noticed at once
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: rank 1 stopped"), err
    assert f"cpnas search --resume {run_dir}" in lines[0] and proc.returncode != 0
    assert run_states(events)[-1] == "failed"  # the log says how the run ended; its checkpoint stands


@pytest.mark.e2e
def test_two_ranks_correlate_to_the_tables_of_one_process(tmp_path):
    """The supernet and the 3 trainings dealt over 2 ranks, each unit run alone on one thread as a
    single process runs it: the same tables, written once by rank 0."""
    from tests.test_ablate import TINY
    from tests.test_correlate import tables

    args = ["correlate", "--architectures", "3", "--seeds", "1", "--beta-p", "0,2", "--device", "cpu", *set_flags(TINY)]
    alone = run_cli([*args, "--run-dir", str(tmp_path / "alone")], timeout=900)
    assert alone.returncode == 0, alone.stderr
    ranks = run_torchrun(2, [*args, "--run-dir", str(tmp_path / "ranks")], timeout=900)
    assert ranks.returncode == 0, ranks.stderr
    assert tables(tmp_path / "ranks") == tables(tmp_path / "alone")
    assert ranks.stdout.count("cpnas correlate ") == 1 and "2 processes" in ranks.stdout.replace("\n", " ")
    assert ranks.stdout.count("Kendall tau") == alone.stdout.count("Kendall tau") > 0  # the tables, printed once
    assert error_lines(ranks.stderr) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_bad_combinations_end_in_one_line(tmp_path):
    """A batch the world size does not divide, and ranks started with different configurations
    (launched by hand, as torchrun would, but each with its own seed)."""
    odd = start_torchrun(2, search_args(tmp_path / "odd", "search.batch_size=41"))
    port = _free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "cpnas_cli", *search_args(tmp_path / "mixed", f"seed={5 + rank}")],
            env={**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
            | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    _out, err = odd.communicate(timeout=300)
    assert error_lines(err) == [
        "error: search.batch_size 41 is not a multiple of the world size 2: give every rank an equal share: "
        "a batch size divisible by 2, or a number of processes that divides 41"
    ], err
    assert not (tmp_path / "odd").exists()  # nothing written
    mixed = [p.communicate(timeout=300) for p in ranks]
    assert [p.returncode for p in ranks] == [2, 2]
    assert [len(error_lines(e)) for _, e in mixed] == [1, 0], mixed
    assert "the configuration of rank 1 differs from rank 0's" in mixed[0][1]


@pytest.mark.e2e
@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here: --device cuda is a valid combination")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    settings = [s for s in DDP_SEARCH if not s.startswith("device=")]  # --set would override --device
    args = ["search", "--run-dir", str(tmp_path / "cuda"), *set_flags(settings), "--device", "cuda"]
    result = run_torchrun(2, args, timeout=300)
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "device cuda:0 (LOCAL_RANK 0) is not available on this machine" in lines[0], (
        result.stderr
    )
    assert not (tmp_path / "cuda").exists()
