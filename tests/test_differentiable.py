"""PC-DARTS and DCP-NAS parts on numbers worked by hand: the DARTS rule with edge normalisation,
partial channels and the shuffle, first-order alternation, DCP's tangent, penalty, Hessian
options, back-tracking and learned scales."""

import math

import pytest
import torch
import torch.nn as nn

from cpnas_cli.bookkeeping import darts_rule
from cpnas_cli.config import load_config
from cpnas_cli.engine.nn.backbone import CellSlot
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.search.data import SearchData
from cpnas_cli.engine.search.mixed_supernet import MixedCell, MixedEdge, MixedSupernet, channel_shuffle
from cpnas_cli.engine.search.strategies.dcp.decoupling import BackTracking, backtracked_ops, op_weight_norms
from cpnas_cli.engine.search.strategies.dcp.scaled_binary import ScaledBinaryConv2d, learn_scales, reconstruction_error
from cpnas_cli.engine.search.strategies.dcp.tangent import (
    agreement,
    child_arch_gradient,
    parent_tangent,
    tangent_distance,
)
from cpnas_cli.engine.search.strategies.pc_darts import PCDartsStrategy

OPS3 = ["zero", "skip", "sep_conv_3x3"]
CHILD, PARENT = Style(binary=True), Style(binary=False)


def logs(*probabilities):
    """Logits whose softmax is exactly these probabilities."""
    return [math.log(p) for p in probabilities]


# --- DARTS rule and edge normalisation (nodes = 2: edges 0->2 1->2 0->3 1->3 2->3) ----------

ALPHA = {
    cell: [logs(0.5, 0.3, 0.2), logs(0.2, 0.2, 0.6), logs(0.1, 0.6, 0.3), logs(0.1, 0.2, 0.7), logs(0.1, 0.45, 0.45)]
    for cell in ("normal", "reduce")
}


def pairs(cell):
    return [[(e.op, e.source, e.indicator) for e in node] for node in cell.nodes]


def test_softmax_and_edge_weights_per_node():
    assert darts_rule.softmax([0.0, math.log(3)]) == pytest.approx([0.25, 0.75])
    beta = {"normal": [0.0, math.log(3), 0.0, 0.0, math.log(2)]}
    # node 2: softmax(0, ln 3) = 1/4, 3/4; node 3: (1, 1, 2) / 4
    assert darts_rule.edge_weights(beta, 2)["normal"] == pytest.approx([0.25, 0.75, 0.25, 0.25, 0.5])


def test_darts_rule_keeps_the_two_best_nonzero_edges_and_skips_zero():
    g = darts_rule.derive(ALPHA, OPS3, 2)
    # node 2: 1->2 sep 0.6, 0->2 skip 0.3 (zero's 0.5 never counts)
    # node 3: 1->3 sep 0.7, 0->3 skip 0.6; 2->3 (0.45, a skip/sep tie won by skip) is dropped
    assert pairs(g.normal) == [
        [("sep_conv_3x3", 1, 0.6), ("skip", 0, 0.3)],
        [("sep_conv_3x3", 1, 0.7), ("skip", 0, 0.6)],
    ]


def test_edge_normalisation_changes_which_edges_are_kept_not_their_op():
    beta = {cell: [math.log(3), 0.0, 0.0, 0.0, math.log(4)] for cell in ("normal", "reduce")}
    g = darts_rule.derive(ALPHA, OPS3, 2, beta)
    # node 2 edge weights 3/4, 1/4: skip 0.3 * 0.75 = 0.225 beats sep 0.6 * 0.25 = 0.15
    # node 3 edge weights 1/6, 1/6, 4/6: 2->3 skip 0.45 * 4/6 = 0.3, 1->3 sep 0.7/6, 0->3 skip 0.6/6 = 0.1
    assert pairs(g.reduce) == [
        [("skip", 0, 0.225), ("sep_conv_3x3", 1, 0.15)],
        [("skip", 2, 0.3), ("sep_conv_3x3", 1, 0.116667)],
    ]


def test_keep_all_drops_the_edges_where_zero_is_strongest():
    g = darts_rule.derive(ALPHA, OPS3, 2, keep="all")
    assert [[(e.op, e.source) for e in node] for node in g.normal.nodes] == [
        [("sep_conv_3x3", 1)],
        [("sep_conv_3x3", 1), ("skip", 0), ("skip", 2)],
    ]


# --- the mixed supernet ------------------------------------------------------------------


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert channel_shuffle(x, 1).flatten().tolist() == list(range(8))


def test_partial_channels_mix_a_quarter_and_pass_the_rest_through():
    edge = MixedEdge(["zero", "skip"], 8, 1, CHILD, k=4)
    x = torch.randn(2, 8, 5, 5)
    out = edge(x, torch.tensor([0.3, 0.7]))
    expected = channel_shuffle(torch.cat([0.7 * x[:, :2], x[:, 2:]], dim=1), 4)
    assert torch.equal(out, expected)


def test_reduction_edges_max_pool_the_bypass_with_ceil_sizes():
    edge = MixedEdge(["zero", "max_pool_3x3"], 8, 2, CHILD, k=4)
    x = torch.randn(2, 8, 7, 7)
    out = edge(x, torch.tensor([1.0, 0.0]))  # the op's weight 0: only the bypass is left
    assert out.shape == (2, 8, 4, 4)
    bypass = nn.functional.max_pool2d(x[:, 2:], 2, 2, ceil_mode=True)
    assert torch.equal(out, channel_shuffle(torch.cat([torch.zeros(2, 2, 4, 4), bypass], dim=1), 4))


def test_ops_are_built_one_kth_wide():
    edge = MixedEdge(["zero", "sep_conv_3x3"], 16, 1, CHILD, k=4)
    assert edge.ops["sep_conv_3x3"][0].in_channels == 4


def test_edge_normalisation_weights_each_nodes_inputs_by_softmax_beta():
    cell = MixedCell(["skip"], 2, CellSlot(0, False, False, 1, 1, 1, 2), PARENT, k=1)
    cell.pre0, cell.pre1 = nn.Identity(), nn.Identity()
    s0, s1 = torch.full((1, 1, 1, 1), 4.0), torch.full((1, 1, 1, 1), 8.0)
    beta = torch.tensor([0.0, math.log(3), 0.0, 0.0, math.log(2)])
    out = cell(s0, s1, torch.zeros(5, 1), beta).flatten().tolist()
    # node 2 = 4/4 + 8 * 3/4 = 7; node 3 = (4 + 8 + 2 * 7) / 4 = 6.5
    assert out == pytest.approx([7.0, 6.5])


def test_supernet_rejects_channels_not_divisible_by_k():
    with pytest.raises(ValueError, match="divisible"):
        MixedSupernet(1, 10, 6, 2, OPS3, CHILD, nodes=2, reductions=[1], k=4)


# --- PC-DARTS: first-order alternation ---------------------------------------------------

TINY = [
    "data.train_fraction=0.03",
    "data.val_fraction=0.03",
    "search.ops=[zero, skip, max_pool_3x3, sep_conv_3x3]",
    "search.channels=4",
    "search.cells=3",
    "search.reductions=[1, 2]",
    "search.diff_batch_size=40",
    "search.eval_batch_size=120",
    "device=cpu",
    "seed=3",
]


@pytest.fixture(scope="module")
def pc_darts():
    config = load_config("quick", sets=[*TINY, "search.strategy=pc-darts"])
    data = SearchData(config, torch.device("cpu"))
    batches, _ = data.train_batches(0, 1, 40)
    return PCDartsStrategy(config, data, torch.device("cpu")), next(iter(batches))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    """Parameters that moved (BN running statistics are buffers: every forward updates them)."""
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_a_weight_step_moves_the_weights_and_not_the_architecture(pc_darts):
    strategy, (x, y) = pc_darts
    weights, arch = snapshot(strategy.net), snapshot(strategy.arch)
    strategy.weight_step(x, y, lr=0.1)
    assert not changed(arch, strategy.arch)
    assert changed(weights, strategy.net)


def test_an_architecture_step_moves_alpha_and_beta_and_not_the_weights(pc_darts):
    strategy, (x, y) = pc_darts
    weights, arch = snapshot(strategy.net), snapshot(strategy.arch)
    strategy.arch_step(x, y)
    assert not changed(weights, strategy.net)
    assert changed(arch, strategy.arch) == {"alpha.normal", "alpha.reduce", "beta.normal", "beta.reduce"}


# --- DCP-NAS -----------------------------------------------------------------------------


def tiny_supernet(style):
    torch.manual_seed(0)
    return MixedSupernet(1, 10, 4, 2, OPS3, style, nodes=2, reductions=[1], stem_stride=2, k=2)


def tiny_alpha(requires_grad=True):
    g = torch.Generator().manual_seed(1)
    return {c: (0.5 * torch.randn(5, 3, generator=g)).requires_grad_(requires_grad) for c in ("normal", "reduce")}


def test_printed_eq_4_29_vanishes_and_the_repaired_tangent_does_not():
    parent, alpha = tiny_supernet(PARENT), tiny_alpha()
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    printed = torch.autograd.grad(parent(x, alpha).softmax(1).sum(), list(alpha.values()))  # sum_n dp_n/dalpha
    assert max(g.abs().max().item() for g in printed) < 1e-6
    t, p = parent_tangent(parent, alpha, x, y)
    assert all(not v.requires_grad for v in t.values()) and not p.requires_grad
    assert min(v.abs().sum().item() for v in t.values()) > 1e-4
    assert torch.allclose(p.sum(1), torch.ones(16))


def test_agreement_is_minus_kl_and_zero_when_child_equals_parent():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    assert agreement(logits, logits.softmax(1)).item() == pytest.approx(0.0, abs=1e-7)
    p = torch.tensor([[0.5, 0.5]])
    q_logits = torch.log(torch.tensor([[0.25, 0.75]]))
    # -KL = 0.5 ln(0.25/0.5) + 0.5 ln(0.75/0.5)
    assert agreement(q_logits, p).item() == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(1.5))


def quadratic(alpha):
    """G = b.a - 1/2 a.A a on one cell's two logits: g = b - A a, Hessian -A."""
    a = alpha["normal"]
    A, b = torch.tensor([[2.0, 1.0], [1.0, 3.0]]), torch.tensor([1.0, -1.0])
    return b @ a - 0.5 * a @ A @ a


@pytest.mark.parametrize("hessian", ["ggn", "exact"])
def test_the_penalty_vanishes_when_the_childs_gradient_is_the_tangent(hessian):
    alpha = {"normal": torch.tensor([0.5, -0.5], requires_grad=True)}
    g = torch.tensor([1.0, -1.0]) - torch.tensor([[2.0, 1.0], [1.0, 3.0]]) @ torch.tensor([0.5, -0.5])
    grads, logged = child_arch_gradient(quadratic(alpha), alpha, {"normal": g}, 0.1, hessian)
    assert logged["tangent_distance"] == pytest.approx(0.0) and logged["penalty_share"] == pytest.approx(0.0)
    assert grads["normal"].tolist() == pytest.approx((-g).tolist())
    assert tangent_distance({"normal": g}, {"normal": g}).item() == 0.0


def test_exact_and_rank_one_hessians_on_a_quadratic():
    # a = (0.5, -0.5): g = b - A a = (1 - 0.5, -1 + 1) = (0.5, 0); t = (0, 1): g - t = (0.5, -1)
    alpha = {"normal": torch.tensor([0.5, -0.5], requires_grad=True)}
    t, lam = {"normal": torch.tensor([0.0, 1.0])}, 0.1
    exact, logged = child_arch_gradient(quadratic(alpha), alpha, t, lam, "exact")
    assert logged["tangent_distance"] == pytest.approx(0.25 + 1.0)
    # -g + 2 lam (-A)(g - t) = (-0.5, 0) - 0.2 (2*0.5 - 1, 0.5 - 3) = (-0.5, 0.5)
    assert exact["normal"].tolist() == pytest.approx([-0.5, 0.5])
    ggn, _ = child_arch_gradient(quadratic(alpha), alpha, t, lam, "ggn")
    # -g (1 + 2 lam g.(g - t)) = -(0.5, 0) (1 + 0.2 * 0.25) = (-0.525, 0)
    assert ggn["normal"].tolist() == pytest.approx([-0.525, 0.0])


def test_exact_hessian_differentiates_through_the_binary_child():
    parent, child, alpha = tiny_supernet(PARENT), learn_scales(tiny_supernet(CHILD)), tiny_alpha()
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    t, p = parent_tangent(parent, alpha, x, y)
    grads = {
        h: child_arch_gradient(agreement(child(x, alpha), p), alpha, t, 50.0, h)[0]["normal"] for h in ("ggn", "exact")
    }
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert not torch.allclose(grads["ggn"], grads["exact"])  # a large lambda makes the Hessians' difference show
    plain = {
        h: child_arch_gradient(agreement(child(x, alpha), p), alpha, t, 0.0, h)[0]["normal"] for h in ("ggn", "exact")
    }
    assert torch.allclose(plain["ggn"], plain["exact"])  # lambda = 0: both are -g


def test_backtracked_ops_are_those_ranked_below_tau_by_weight_norm():
    # ranks by norm: op6 (9) 1, op7 (7) 2, op2 (5) 3, op3 (3) 4; the weight-free ops come last
    assert backtracked_ops([0, 0, 5, 3, 0, 0, 9, 7], 4) == [True, True, False, False, True, True, False, False]
    assert backtracked_ops([1, 2], 0) == [True, True]


def test_back_tracking_corrects_the_selected_columns_and_learns_psi():
    net = tiny_supernet(CHILD)
    norms = op_weight_norms(net, "normal")
    assert norms[0] == norms[1] == 0.0 and norms[2] > 0  # zero and (stride-1) skip hold no weights
    tracking = BackTracking((5, 3), psi_init=2.0, psi_lr=10.0, tau=1)
    before = {"normal": torch.full((5, 3), 0.5), "reduce": torch.full((5, 3), 0.5)}
    alpha = {c: v.clone() + 1.0 for c, v in before.items()}
    tracking.correct(alpha, before, net, eta=0.01)
    # eta psi alpha_old = 0.01 * 2 * 0.5 on zero and skip; sep_conv (rank 1 <= tau) untouched
    assert alpha["normal"][0].tolist() == pytest.approx([1.51, 1.51, 1.5])
    # next gradient 1 everywhere: psi <- |2 - 10 * 1 * 0.005| on the corrected columns
    tracking.learn({c: torch.ones(5, 3) for c in before})
    assert tracking.psi_normal[0].tolist() == pytest.approx([1.95, 1.95, 2.0])


def test_learned_scales_start_as_mean_abs_weight_and_reconstruction_error_is_eq_4_23():
    net = tiny_supernet(CHILD)
    x = torch.randn(4, 1, 12, 12)
    alpha = tiny_alpha(False)
    before = net(x, alpha)
    learn_scales(net)
    scaled = [m for m in net.modules() if isinstance(m, ScaledBinaryConv2d)]
    assert scaled and torch.allclose(net(x, alpha), before, atol=1e-5)
    conv = scaled[0]
    expected = (conv.weight - conv.scale.view(-1, 1, 1, 1) * torch.sign(conv.weight)).pow(2).sum()
    with torch.no_grad():
        for m in scaled[1:]:
            m.weight.copy_(m.scale.view(-1, 1, 1, 1) * torch.sign(m.weight))  # already binary: no error
    assert reconstruction_error(net).item() == pytest.approx(expected.item(), rel=1e-5)
