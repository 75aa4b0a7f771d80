"""The harmonizer loss: numpy references for its pieces, torch/TF parity, double backward."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from model_zoo.harmonization import loss_torch as lt  # noqa: E402

pytestmark = pytest.mark.torch


# --- independent numpy references -----------------------------------------------------------------

def np_standardize_cut(m: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    out = np.empty_like(m, dtype=np.float64)
    for i, x in enumerate(m.astype(np.float64)):
        out[i] = np.maximum((x - x.mean()) / (np.std(x) + eps), 0.0)  # np.std: population (ddof=0)
    return out


def np_same_downsample(x: np.ndarray) -> np.ndarray:
    """5x5 binomial kernel, stride 2, TF 'SAME' zero padding, written out pixel by pixel."""
    k1 = np.array([1, 4, 6, 4, 1], np.float64)
    k = np.outer(k1, k1) / 256.0
    n, h, w = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    pad_h = max((oh - 1) * 2 + 5 - h, 0)
    pad_w = max((ow - 1) * 2 + 5 - w, 0)
    top, left = pad_h // 2, pad_w // 2
    out = np.zeros((n, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for di in range(5):
                for dj in range(5):
                    r, c = 2 * i + di - top, 2 * j + dj - left
                    if 0 <= r < h and 0 <= c < w:
                        out[:, i, j] += k[di, dj] * x[:, r, c]
    return out


def np_pyramidal_mse(a, b, t, levels):
    terms = []
    for _ in range(levels):
        terms.append(np.mean((a - b) ** 2 * t[:, None, None]))
        a, b = np_same_downsample(a), np_same_downsample(b)
    return float(np.mean(terms))


def test_same_padding_is_one_before_two_after_for_even_sizes():
    assert lt._same_pad(224) == (1, 2)
    assert lt._same_pad(7) == (2, 2)
    # a single bright pixel at (0, 0): with 1 pixel of top/left padding it lands on kernel tap (1, 1)
    x = np.zeros((1, 8, 8), np.float32)
    x[0, 0, 0] = 1.0
    got = lt.pyramid(torch.from_numpy(x), 2)[1].numpy()
    assert got[0, 0, 0] == pytest.approx(16 / 256)


@pytest.mark.parametrize("size", [(16, 16), (14, 10), (9, 7)])
def test_pyramid_matches_numpy_tf_same(size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, *size)).astype(np.float32)
    got = lt.pyramid(torch.from_numpy(x), 4)
    ref = x.astype(np.float64)
    for level in got:
        np.testing.assert_allclose(level.numpy(), ref, rtol=1e-5, atol=1e-6)
        ref = np_same_downsample(ref)
    assert len(got) == 4


def test_standardize_cut_population_std():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(4, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(lt.standardize_cut(torch.from_numpy(x)).numpy(), np_standardize_cut(x),
                               rtol=1e-5, atol=1e-6)


def test_pyramidal_mse_matches_numpy_and_tokens_weight_over_all_n():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 4, 16, 16))
    t = np.array([1.0, 0.0, 1.0, 0.0])
    got = lt.pyramidal_mse(torch.tensor(a), torch.tensor(b), torch.tensor(t), levels=5)
    assert float(got) == pytest.approx(np_pyramidal_mse(a, b, t, 5), rel=1e-10)
    norm = lt.pyramidal_mse(torch.tensor(a), torch.tensor(b), torch.tensor(t), levels=5, token_normalise=True)
    assert float(norm) == pytest.approx(2 * np_pyramidal_mse(a, b, t, 5), rel=1e-10)  # 4 images / 2 tokens


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="maps must be"):
        lt.standardize_cut(torch.zeros(2, 3, 8, 8))
    model = TinyNet()
    with pytest.raises(ValueError, match="heatmaps"):
        lt.harmonizer_loss(model, torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), torch.zeros(2, 4, 4),
                           torch.ones(2))


# --- a tiny network, identical in both frameworks ------------------------------------------------

class TinyNet(nn.Module):
    def __init__(self, classes: int = 5, act=nn.Tanh):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, eps=1e-3)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, classes)
        self.act = act()

    def forward(self, x):
        x = self.act(self.bn(self.conv1(x)))
        x = self.act(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def make_batch(n=4, size=16, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    heat = np.stack([np.exp(-((yy - rng.uniform(3, size - 3)) ** 2 + (xx - rng.uniform(3, size - 3)) ** 2) / 8)
                     for _ in range(n)]).astype(np.float32)
    labels = rng.integers(0, classes, n)
    tokens = np.array([1, 0, 1, 1][:n] + [1] * max(0, n - 4), np.float32)
    return images, labels, heat, tokens


def test_weight_decay_skips_norm_embedding_and_tokens():
    class WithEmbed(TinyNet):
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 6))
            self.emb = nn.Embedding(3, 6)
            self.down = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))  # torchvision-style naming

    names = {n for n, _ in lt.decay_parameters(WithEmbed())}
    assert names == {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias",
                     "down.0.weight", "down.0.bias"}


def test_tokens_zero_gives_zero_harmonization_and_no_saliency_gradient():
    torch.manual_seed(0)
    model = TinyNet()
    images, labels, heat, _ = make_batch()
    out = lt.harmonizer_loss(model, torch.from_numpy(images), torch.from_numpy(labels),
                             torch.from_numpy(heat), torch.zeros(4))
    assert out["harmonization"].item() == 0.0
    base = lt.harmonizer_loss(model, torch.from_numpy(images), torch.from_numpy(labels),
                              torch.from_numpy(heat), torch.zeros(4), harmonize=False)
    assert out["total"].item() == pytest.approx(base["total"].item(), rel=1e-6)


def test_harmonization_gradient_flows_through_saliency_finite_difference():
    torch.manual_seed(0)
    model = TinyNet().double()
    model.bn.eval()  # keeps the probe a pure function of the weights
    images, labels, heat, tokens = make_batch(size=8)
    x0 = torch.from_numpy(images).double()
    targets = lt._targets(torch.from_numpy(labels), 5).double()
    tok = torch.from_numpy(tokens).double()
    # the human branch with the saliency-max scale frozen, as the stop-gradient makes it
    fixed = torch.from_numpy(np_standardize_cut(heat))

    def harm():
        x = x0.clone().requires_grad_(True)
        sal = lt.saliency_maps(model(x), x, targets)
        return lt.pyramidal_mse(fixed, lt.standardize_cut(sal), tok)

    h = harm()
    (g,) = torch.autograd.grad(h, model.conv1.weight)
    assert g.abs().max() > 0  # the map term alone reaches the first conv: double backward
    direction = torch.randn_like(model.conv1.weight)
    eps = 1e-6
    w0 = model.conv1.weight.detach().clone()
    with torch.no_grad():
        model.conv1.weight.copy_(w0 + eps * direction)
    up = harm().item()
    with torch.no_grad():
        model.conv1.weight.copy_(w0 - eps * direction)
    down = harm().item()
    fd = (up - down) / (2 * eps)
    assert (g * direction).sum().item() == pytest.approx(fd, rel=1e-5)


def test_saliency_scale_is_held_out_of_the_gradient():
    torch.manual_seed(0)
    sal = torch.randn(3, 8, 8, dtype=torch.float64, requires_grad=True)
    heat = torch.rand(3, 8, 8, dtype=torch.float64)
    tok = torch.ones(3, dtype=torch.float64)
    (g,) = torch.autograd.grad(lt.harmonization_term(sal, heat, tok), sal)
    cut = lt.standardize_cut(sal)
    scale = (cut.amax(dim=(1, 2)) + lt.MAX_EPS).detach().view(-1, 1, 1)
    hm = torch.from_numpy(np_standardize_cut(heat.numpy()))
    hm = hm / (hm.amax(dim=(1, 2), keepdim=True) + lt.MAX_EPS) * scale
    (ref,) = torch.autograd.grad(lt.pyramidal_mse(hm, cut, tok), sal)
    torch.testing.assert_close(g, ref)


def test_max_abs_saliency_option_changes_the_map():
    torch.manual_seed(0)
    model = TinyNet()
    images, labels, heat, tokens = make_batch()
    x = torch.from_numpy(images).requires_grad_(True)
    logits = model(x)
    t = lt._targets(torch.from_numpy(labels), 5)
    s_mean = lt.saliency_maps(logits, x, t)
    s_max = lt.saliency_maps(logits, x, t, reduction="max", absolute=True)
    (ref,) = torch.autograd.grad((logits * t).sum(), x)
    torch.testing.assert_close(s_mean, ref.mean(1))
    torch.testing.assert_close(s_max, ref.abs().amax(1))


# --- torch <-> TF parity ----------------------------------------------------------------------------

@pytest.mark.tf
def test_torch_and_tf_give_same_terms_and_gradients():
    from model_zoo.frameworks import import_tensorflow

    tf = import_tensorflow()
    import keras

    from model_zoo.harmonization import loss_tf

    torch.manual_seed(0)
    tmodel = TinyNet()
    with torch.no_grad():  # non-trivial BN affine parameters
        tmodel.bn.weight.uniform_(0.5, 1.5)
        tmodel.bn.bias.uniform_(-0.3, 0.3)
    images, labels, heat, tokens = make_batch(n=4, size=16)

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9, name="bn")(x)
    x = keras.layers.Activation("tanh")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="tanh", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    kmodel = keras.Model(inp, keras.layers.Dense(5, name="fc")(x))
    sd = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    kmodel.get_layer("conv1").set_weights([sd["conv1.weight"].transpose(2, 3, 1, 0), sd["conv1.bias"]])
    kmodel.get_layer("conv2").set_weights([sd["conv2.weight"].transpose(2, 3, 1, 0), sd["conv2.bias"]])
    kmodel.get_layer("bn").set_weights([sd["bn.weight"], sd["bn.bias"], sd["bn.running_mean"],
                                        sd["bn.running_var"]])
    kmodel.get_layer("fc").set_weights([sd["fc.weight"].T, sd["fc.bias"]])

    kw = dict(weight_decay=1e-2)  # large enough that the decay term is visible in the comparison
    args = (images, labels, heat, tokens)
    for training in (False, True):
        tmodel.train(training)
        tout = lt.harmonizer_loss(tmodel, *map(torch.from_numpy, args), **kw)
        tgrads = torch.autograd.grad(tout["total"], [tmodel.conv1.weight, tmodel.bn.weight, tmodel.fc.weight])
        with tf.GradientTape() as tape:
            kout = loss_tf.harmonizer_loss(kmodel, images.transpose(0, 2, 3, 1), labels, heat[..., None],
                                           tokens, training=training, **kw)
        kvars = [kmodel.get_layer("conv1").kernel, kmodel.get_layer("bn").gamma, kmodel.get_layer("fc").kernel]
        kgrads = tape.gradient(kout["total"], kvars)
        for term in ("total", "cross_entropy", "weight_decay", "harmonization"):
            assert float(kout[term]) == pytest.approx(tout[term].item(), rel=1e-4), (term, training)
        assert tout["harmonization"].item() > 0
        # Training-mode BatchNorm: tf.nn.moments stops the gradient of the mean inside the variance,
        # exact for first derivatives but not for the double backward (torch's is exact, checked by
        # finite differences above), so the parameter gradients agree to ~1e-3 of their scale only.
        atol = 1e-6 if not training else 2e-3 * float(np.abs(tgrads[0].numpy()).max())
        np.testing.assert_allclose(kgrads[0].numpy(), tgrads[0].numpy().transpose(2, 3, 1, 0), rtol=1e-4, atol=atol)
        np.testing.assert_allclose(kgrads[1].numpy(), tgrads[1].numpy(), rtol=1e-4, atol=atol)
        np.testing.assert_allclose(kgrads[2].numpy(), tgrads[2].numpy().T, rtol=1e-4, atol=atol)
    # the TF pieces against the same numpy references
    rng = np.random.default_rng(3)
    m = rng.normal(size=(2, 14, 10)).astype(np.float32)
    np.testing.assert_allclose(loss_tf.pyramid(m, 2)[1].numpy(), np_same_downsample(m), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss_tf.standardize_cut(m).numpy(), np_standardize_cut(m), rtol=1e-5, atol=1e-5)
    names = {v.path for v in loss_tf.decay_variables(kmodel)}
    assert names == {"conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias", "fc/kernel", "fc/bias"}
