"""BatchNorm folding for the ``fused`` fast path: what folds, what must not, and that the numbers hold."""
from __future__ import annotations

import pytest

from model_zoo.errors import InvalidInputError

torch = pytest.importorskip("torch")
nn = torch.nn

from model_zoo.adapters.batchnorm_folding import fold_batch_norm  # noqa: E402


def _randomise_batch_norms(net: nn.Module) -> nn.Module:
    """Eval statistics far from the identity, so a wrong fold shows in the logits."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    return net.eval()


class _Residual(nn.Module):
    """conv -> BN, where the conv's output also feeds a residual sum: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _SharedConv(nn.Module):
    """One conv called twice, each call followed by its own BatchNorm: folding either would change
    the other call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv(self.bn1(self.conv(x))))


class _ScaledConv(nn.Conv2d):
    """A conv that transforms its weight (like weight standardisation): not foldable."""

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight / self.weight.norm(), self.bias, self.stride, self.padding)


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 0:  # control flow on values: torch.fx cannot trace it
            return self.conv(x)
        return -self.conv(x)


def _batch_norm_count(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def test_plain_conv_bn_pairs_fold_and_the_outputs_hold() -> None:
    torch.manual_seed(0)
    net = _randomise_batch_norms(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batch_norm(net, "toy")
    assert (folded.folded, folded.batch_norms) == (2, 2)
    assert _batch_norm_count(folded.module) == 0
    assert not any(p.requires_grad for p in folded.module.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = net(x), folded.module(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the module given is untouched
    assert _batch_norm_count(net) == 2


def test_unsafe_pairs_are_left_alone() -> None:
    torch.manual_seed(0)
    pre_activation = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))  # BN after no conv
    scaled = nn.Sequential(_ScaledConv(4, 4, 3, padding=1), nn.BatchNorm2d(4))
    untracked = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False))
    x = torch.randn(2, 4, 16, 16)
    for name, net in (("residual", _Residual()), ("pre-activation", pre_activation), ("scaled", scaled),
                      ("untracked", untracked), ("shared", _SharedConv())):
        net = _randomise_batch_norms(net)
        folded = fold_batch_norm(net, name)
        assert folded.folded == 0, name
        assert _batch_norm_count(folded.module) == folded.batch_norms == _batch_norm_count(net), name
        with torch.no_grad():
            torch.testing.assert_close(folded.module(x), net(x), msg=name)


def test_timm_batch_norm_act_keeps_its_activation_and_same_padding_convs_fold() -> None:
    timm_layers = pytest.importorskip("timm.layers")
    torch.manual_seed(0)
    net = _randomise_batch_norms(nn.Sequential(
        timm_layers.Conv2dSame(3, 8, 3, stride=2), timm_layers.BatchNormAct2d(8, act_layer=nn.ReLU6),
        nn.Conv2d(8, 8, 1), timm_layers.BatchNormAct2d(8, act_layer=nn.SiLU)))
    folded = fold_batch_norm(net, "timm-toy")
    assert (folded.folded, folded.batch_norms) == (2, 2)
    x = torch.randn(2, 3, 33, 31)  # odd sizes: 'same' padding is asymmetric
    with torch.no_grad():
        want, got = net(x), folded.module(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    # the BatchNormAct2d blocks became their activations (equal outputs above prove they run)
    assert isinstance(folded.module.get_submodule("1")[-1], nn.ReLU6)
    assert isinstance(folded.module.get_submodule("3")[-1], nn.SiLU)


def test_torchvision_resnet_folds_every_batch_norm() -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = _randomise_batch_norms(torchvision.models.resnet18(num_classes=10))
    folded = fold_batch_norm(net, "resnet18")
    assert folded.folded == folded.batch_norms == _batch_norm_count(net) > 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want, got = net(x), folded.module(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_an_untraceable_network_is_named_with_the_alternatives() -> None:
    with pytest.raises(InvalidInputError, match=r"fast path fused: branchy cannot be traced by torch.fx.*channels_last"):
        fold_batch_norm(_DataDependent().eval(), "branchy")


def test_a_network_in_training_mode_is_folded_with_its_eval_statistics() -> None:
    torch.manual_seed(0)
    net = _randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))).train()
    folded = fold_batch_norm(net, "training")
    assert net.training and not folded.module.training  # the caller's mode is left as it was
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded.module(x), net.eval()(x), rtol=1e-5, atol=1e-5)
    assert folded.folded == 1
