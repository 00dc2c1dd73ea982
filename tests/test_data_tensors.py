"""Dataset rows as tensors: draw_rows (the one row sampler) and OfflineData.sample.

The draws are pinned to the expressions the callers used before draw_rows existed, so that a
seed keeps giving the same batches, the same `scoredec sample` output and the same report rows."""

import numpy as np
import pytest
import torch

from scoredec.data.tensors import OfflineData, draw_rows
from scoredec.layout import AgentSpec


@pytest.mark.parametrize("n_rows,count", [(1, 1), (3, 7), (113, 64), (3000, 1)])
def test_torch_draws_with_replacement_are_randint(n_rows, count):
    got = draw_rows(n_rows, count, torch.Generator().manual_seed(4))
    want = torch.randint(n_rows, (count,), generator=torch.Generator().manual_seed(4))
    assert got.dtype == torch.int64 and torch.equal(got, want)


@pytest.mark.parametrize("n_rows,count", [(1, 1), (3, 7), (113, 64), (3000, 3000)])
def test_torch_draws_without_replacement_are_a_permutation_prefix(n_rows, count):
    got = draw_rows(n_rows, count, torch.Generator().manual_seed(4), replace=False)
    want = torch.randperm(n_rows, generator=torch.Generator().manual_seed(4))[:count]
    assert torch.equal(got, want)
    assert got.numel() == min(n_rows, count) and got.unique().numel() == got.numel()


@pytest.mark.parametrize("replace", [True, False])
def test_numpy_draws_are_the_generators_own(replace):
    got = draw_rows(50, 20, np.random.default_rng(9), replace=replace)
    rng = np.random.default_rng(9)
    want = rng.integers(0, 50, size=20) if replace else rng.permutation(50)[:20]
    assert got.dtype == torch.int64 and got.tolist() == want.tolist()


def test_draws_continue_the_generator():
    g = torch.Generator().manual_seed(1)
    first, second = draw_rows(100, 5, g), draw_rows(100, 5, g)
    assert not torch.equal(first, second)
    g.manual_seed(1)
    assert torch.equal(draw_rows(100, 5, g), first)


@pytest.mark.parametrize("kwargs,field", [
    (dict(n_rows=0, count=1), "n_rows"),
    (dict(n_rows=2.5, count=1), "n_rows"),
    (dict(n_rows=10, count=-1), "count"),
    (dict(n_rows=10, count=True), "count"),
])
def test_bad_sizes_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        draw_rows(generator=torch.Generator(), **kwargs)


def test_a_generator_of_another_kind_is_refused():
    with pytest.raises(TypeError, match="generator"):
        draw_rows(10, 1, 3)


def test_offline_data_sample_takes_the_drawn_rows():
    T, n = 37, 2
    g = torch.Generator().manual_seed(0)
    data = OfflineData(torch.randn(T, n, 3, generator=g), torch.rand(T, n, 1, generator=g),
                       torch.randn(T, n, generator=g), torch.randn(T, n, 3, generator=g),
                       torch.zeros(T), AgentSpec((3, 3), (1, 1)))
    batch = data.sample(16, torch.Generator().manual_seed(2))
    idx = draw_rows(T, 16, torch.Generator().manual_seed(2))
    assert torch.equal(batch.obs, data.obs[idx]) and torch.equal(batch.actions, data.actions[idx])
    assert torch.equal(batch.rewards, data.rewards[idx]) and torch.equal(batch.terminals, data.terminals[idx])
