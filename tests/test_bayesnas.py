"""BayesNAS (Zhou et al., ICML 2019): its prior update and pruning against the equations computed by
hand, the curvature estimate, what pruning does to the forward, and the refusal of unrelaxed spaces."""
from __future__ import annotations

import math

import pytest
import torch
from pytorch_lightning import Trainer
from torch.utils.data import DataLoader

from lightning_nas.errors import UnsupportedCombinationError
from lightning_nas.nn.nb201 import NB201Cell
from lightning_nas.strategies.bayesnas import BayesNAS, fisher_diagonal, laplace_update, under_parent

TINY = dict(space="nb201", network={"C": 4, "N": 1, "affine": False}, num_classes=3, in_channels=1)


def _hand(gamma: float, curvature: float, switch: float, lam: float) -> tuple[float, float, float]:
    """Alg. 1 as written: C = (1/gamma + H/lambda)^-1, omega = sqrt(|1/gamma - C/gamma^2|), gamma' = |s|/omega."""
    covariance = 1.0 / (1.0 / gamma + curvature / lam)
    omega = math.sqrt(abs(1.0 / gamma - covariance / gamma ** 2))
    return covariance, omega, abs(switch) / omega


def test_laplace_update_matches_the_equations_by_hand():
    gamma = torch.tensor([0.5, 0.2, 0.9], dtype=torch.float64)
    curvature = torch.tensor([2.0, 0.03, 0.0], dtype=torch.float64)
    switch = torch.tensor([0.8, -0.05, 0.7], dtype=torch.float64)
    covariance, omega, new_gamma = laplace_update(gamma, curvature, switch, lam=0.01)
    for k in range(2):
        c, w, g = _hand(float(gamma[k]), float(curvature[k]), float(switch[k]), 0.01)
        assert covariance[k].item() == pytest.approx(c, rel=1e-12)
        assert omega[k].item() == pytest.approx(w, rel=1e-9)
        assert new_gamma[k].item() == pytest.approx(g, rel=1e-9)
    # e.g. k = 0: C = 1 / (2 + 200) = 1/202, omega^2 = 2 - 4/202, gamma' = 0.8 / sqrt(2 - 4/202)
    assert new_gamma[0].item() == pytest.approx(0.8 / math.sqrt(2 - 4 / 202), rel=1e-9)
    # no evidence (H = 0): the posterior is the prior, omega = 0, and the switch is given up
    assert covariance[2].item() == pytest.approx(0.9) and omega[2].item() == 0.0 and new_gamma[2].item() == 0.0


def test_an_operation_prior_is_bounded_by_its_edge():
    child, parent = torch.tensor([0.3, 0.5, 0.2]), torch.tensor([0.6, 0.0, 1e-6])
    combined = under_parent(child, parent)
    assert combined[0].item() == pytest.approx(1 / (1 / 0.3 + 1 / 0.6))  # = 0.2
    assert combined[1].item() == 0.0  # a pruned edge prunes its operations
    assert combined[2].item() <= 1e-6


def test_fisher_diagonal_is_exact_where_it_can_be():
    # batch size 1: the mean of squared per-sample gradients
    g = torch.tensor([[0.5, -1.0], [1.5, 0.0], [-0.5, 2.0]], dtype=torch.float64)
    assert torch.allclose(fisher_diagonal((g * g).sum(0), g.sum(0), 3, 3), (g * g).mean(0))
    # identical per-sample gradients c within a batch of 8: E[g_n^2] = c^2 whatever the batch size
    c = torch.tensor([0.3, -2.0], dtype=torch.float64)
    steps, batch = 4, 8
    estimate = fisher_diagonal(steps * batch * c * c, steps * c, steps, steps * batch)
    assert torch.allclose(estimate, c * c)


def test_update_and_pruning_of_the_strategy_match_the_equations_by_hand():
    """Given gradient statistics of one epoch, the strategy's update of every switch (edge first, then
    its operations under it) and its pruning decision are those of the equations, by hand."""
    torch.manual_seed(0)
    module = BayesNAS(prior_init="ones", prune_threshold=1e-3, lambda_edge=0.02, lambda_op=0.01, **TINY)
    edge, ops = module.edge_switches["ops"], module.op_switches["ops"]
    steps, batch = 2, 4
    with torch.no_grad():
        edge.value.fill_(0.9)
        ops.value.copy_(torch.linspace(-0.5, 1.0, 30).reshape(6, 5))
        ops.value[0, 3] = 1e-4  # a switch that training drove to (almost) zero
        # per-step mean gradients: step 1 = a, step 2 = b
        a = torch.linspace(0.1, 0.4, 30, dtype=torch.float64).reshape(6, 5)
        b = -0.5 * a
        ops.sum_batch_squares.copy_(batch * (a * a + b * b))
        ops.sum_gradients.copy_(a + b)
        ops.sum_batch_squares[:, 0] = 0.0  # `none`: its output is zero, so is its gradient
        ops.sum_gradients[:, 0] = 0.0
        ea = torch.full((6,), 0.2, dtype=torch.float64)
        edge.sum_batch_squares.copy_(batch * 2 * ea * ea)
        edge.sum_gradients.copy_(2 * ea)
        module.curvature_steps.fill_(steps)
        module.curvature_samples.fill_(steps * batch)
    values = ops.value.detach().clone()
    module.update_prior()

    # the edges: H = E[g^2] = B mean(g_t^2) - (B - 1) mean(g_t)^2 = 4 * 0.04 - 3 * 0.04 = 0.04
    _, edge_omega, edge_gamma = _hand(1.0, 0.04, 0.9, 0.02)
    assert torch.allclose(edge.gamma, torch.full((6,), edge_gamma))
    assert torch.allclose(edge.omega, torch.full((6,), edge_omega))
    for r in range(6):
        for o in range(5):
            ga, gb = float(a[r, o]), float(b[r, o])
            fisher = max(batch * (ga * ga + gb * gb) / 2 - (batch - 1) * ((ga + gb) / 2) ** 2, ((ga + gb) / 2) ** 2)
            if o == 0:  # no evidence: pruned
                assert not ops.alive[r, o] and ops.gamma[r, o] == 0 and ops.value[r, o] == 0
                continue
            covariance, omega, gamma = _hand(1.0, fisher, float(values[r, o]), 0.01)
            gamma = 1.0 / (1.0 / gamma + 1.0 / edge_gamma)  # under its edge
            assert ops.covariance[r, o].item() == pytest.approx(covariance, rel=1e-5)
            assert ops.omega[r, o].item() == pytest.approx(omega, rel=1e-5)
            assert ops.alive[r, o].item() == (gamma > 1e-3), (r, o, gamma)
            assert ops.gamma[r, o].item() == pytest.approx(gamma if gamma > 1e-3 else 0.0, rel=1e-5)
    assert not ops.alive[0, 3]  # |s| = 1e-4: gamma' far below the threshold
    assert ops.alive[1:, 1:].all()
    assert module.curvature_steps == 0 and ops.sum_gradients.abs().sum() == 0 and module.updates == 1


def test_pruned_operations_contribute_nothing_to_the_forward():
    torch.manual_seed(0)
    module = BayesNAS(**TINY).eval()
    ops = module.op_switches["ops"]
    with torch.no_grad():
        ops.alive[2, 3] = False  # edge 2's nor_conv_3x3
        ops.value.mul_(ops.alive)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return module.supernet.forward_weighted(x, module.switch_weights())

    before = forward()
    cell = next(m for m in module.supernet.modules() if isinstance(m, NB201Cell))
    operations = module.space.operations  # the columns of the `ops` group
    with torch.no_grad():
        for p in cell.edges[2][operations[3]].parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(forward(), before)  # the pruned operation's weights do not matter
    with torch.no_grad():
        for p in cell.edges[2][operations[2]].parameters():  # a surviving one's do
            p.add_(torch.randn_like(p))
    assert not torch.equal(forward(), before)
    # nor does a pruned switch learn: no gradient reaches it
    module.train()
    module.supernet.forward_weighted(x, module.switch_weights()).sum().backward()
    assert ops.value.grad[2, 3] == 0 and ops.value.grad[2, 2] != 0


def test_the_prior_is_updated_when_the_next_epoch_starts_and_the_answer_sees_every_epoch():
    """Two epochs: after the first the stored prior is updated (the zero operation pruned), the second
    epoch's statistics are what the final answer and a checkpoint hold."""
    torch.manual_seed(0)
    module = BayesNAS(warmup_epochs=0, **TINY)
    gen = torch.Generator().manual_seed(3)
    batches = [{"weights": (torch.randn(8, 1, 8, 8, generator=gen), torch.randint(3, (8,), generator=gen))}
               for _ in range(2)]
    trainer = Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    assert module.updates == 1 and module.curvature_steps == 2
    none = module.space.operations.index("none")
    assert not module.op_switches["ops"].alive[:, none].any()  # the zero operation has no evidence
    pending = module.posterior_prior()["op:ops"]["gamma"]
    assert not torch.equal(pending, module.op_switches["ops"].gamma)  # the last epoch's update, not yet stored
    relevance = module.relevance()["ops"]
    assert torch.equal(relevance, (pending / pending.max()).float())
    assert module.derive_architecture() == module.space.decode({"ops": relevance})
    # the prior, its statistics and the pruning masks are all in the state dict (what checkpoints save)
    clone = BayesNAS(warmup_epochs=0, **{**TINY, "seed": 1})
    clone.load_state_dict(module.state_dict())
    for key, prior in module.posterior_prior().items():
        for name, value in prior.items():
            assert torch.equal(value, clone.posterior_prior()[key][name]), (key, name)
    assert clone.derive_architecture() == module.derive_architecture()


def test_spaces_without_a_relaxation_are_refused_in_one_line():
    with pytest.raises(UnsupportedCombinationError) as error:
        BayesNAS(space="nb101")
    message = str(error.value)
    assert "\n" not in message and "nb101" in message and "BayesNAS" in message and "priors" in message
