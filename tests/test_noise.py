"""Noise models: transition matrices, validation and deterministic assignment."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from label_smearing.modeling import noise


def test_symmetric_transition_flips_to_other_classes_only():
    t = noise.symmetric_transition(4, 0.3)
    # diagonal 1 - 0.3 = 0.7; off-diagonal 0.3 / 3 = 0.1
    np.testing.assert_allclose(np.diag(t), 0.7)
    np.testing.assert_allclose(t[0, 1:], 0.1)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)


def test_uniform_transition_can_keep_the_label():
    t = noise.uniform_transition(4, 0.4)
    # diagonal 1 - 0.4 + 0.4 / 4 = 0.7; off-diagonal 0.4 / 4 = 0.1
    np.testing.assert_allclose(np.diag(t), 0.7)
    np.testing.assert_allclose(t[1, 0], 0.1)


def test_symmetric_equals_smoothing_with_alpha_l_rho_over_l_minus_1():
    num_classes, rate = 10, 0.2
    np.testing.assert_allclose(
        noise.symmetric_transition(num_classes, rate),
        noise.smoothing_matrix(num_classes, num_classes * rate / (num_classes - 1)),
    )


def test_pair_flip_moves_to_next_class():
    t = noise.pair_flip_transition(3, 0.25)
    np.testing.assert_allclose(t, [[0.75, 0.25, 0], [0, 0.75, 0.25], [0.25, 0, 0.75]])


@pytest.mark.parametrize(
    "matrix, message",
    [
        ([[0.5, 0.5]], "square"),
        ([[0.9, 0.2], [0.5, 0.5]], "row-stochastic"),
        ([[1.2, -0.2], [0.5, 0.5]], "negative"),
        ([[np.nan, 1.0], [0.5, 0.5]], "non-finite"),
    ],
)
def test_validate_transition_names_the_problem(matrix, message):
    with pytest.raises(ValueError, match=message):
        noise.validate_transition(matrix)


def test_validate_transition_checks_size():
    with pytest.raises(ValueError, match="3 classes"):
        noise.validate_transition(np.eye(2), num_classes=3)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_unit_interval_is_an_error(rate):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        noise.symmetric_transition(10, rate)


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, "3", None, True])
def test_num_classes_must_be_an_integer_at_least_two(num_classes):
    for build in (noise.smoothing_matrix, noise.uniform_transition, noise.symmetric_transition):
        with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2"):
            build(num_classes, 0.1)


def test_integral_num_classes_of_any_numeric_type_is_accepted():
    # np.int64 from a label array, 3.0 from a JSON number: the same 3 x 3 matrix.
    for num_classes in (3, np.int64(3), 3.0):
        assert noise.check_num_classes(num_classes) == 3 and type(noise.check_num_classes(num_classes)) is int
        np.testing.assert_allclose(noise.pair_flip_transition(num_classes, 0.25).sum(axis=1), np.ones(3))


def test_load_transition_npy_and_json(tmp_path):
    t = noise.pair_flip_transition(3, 0.1)
    np.save(tmp_path / "t.npy", t)
    (tmp_path / "t.json").write_text(json.dumps({"transition": t.tolist()}))
    (tmp_path / "rows.json").write_text(json.dumps(t.tolist()))
    for name in ("t.npy", "t.json", "rows.json"):
        np.testing.assert_allclose(noise.load_transition(tmp_path / name, 3), t)
    (tmp_path / "bad.json").write_text(json.dumps([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="row-stochastic"):
        noise.load_transition(tmp_path / "bad.json")


def test_load_noisy_labels_csv_with_header_and_checks(tmp_path):
    (tmp_path / "labels.csv").write_text("label\n1\n0\n2\n")
    np.testing.assert_array_equal(noise.load_noisy_labels(tmp_path / "labels.csv", 3, 3), [1, 0, 2])
    with pytest.raises(ValueError, match="4 examples"):
        noise.load_noisy_labels(tmp_path / "labels.csv", 4, 3)
    np.save(tmp_path / "labels.npy", np.array([0, 5]))
    with pytest.raises(ValueError, match="outside"):
        noise.load_noisy_labels(tmp_path / "labels.npy", 2, 3)


def _ids(n):
    return [f"synthetic/train/{i}" for i in range(n)]


def test_assignment_is_a_pure_function_of_seed_id_and_label():
    t = noise.symmetric_transition(10, 0.2)
    ids = _ids(5000)
    clean = np.arange(5000) % 10
    labels = noise.assign_noisy_labels(ids, clean, t, seed=3)
    # Any order, any batching: the same labels.
    perm = np.random.default_rng(0).permutation(5000)
    shuffled = noise.assign_noisy_labels([ids[i] for i in perm], clean[perm], t, seed=3)
    np.testing.assert_array_equal(shuffled, labels[perm])
    halves = np.concatenate(
        [
            noise.assign_noisy_labels(ids[:1234], clean[:1234], t, 3),
            noise.assign_noisy_labels(ids[1234:], clean[1234:], t, 3),
        ]
    )
    np.testing.assert_array_equal(halves, labels)
    other_seed = noise.assign_noisy_labels(ids, clean, t, seed=4)
    assert (other_seed != labels).mean() > 0.2  # about 1 - (0.8^2 + 0.2^2/9) = 0.36


@pytest.mark.parametrize(
    "make",
    [
        lambda: noise.symmetric_transition(5, 0.3),
        lambda: noise.uniform_transition(5, 0.3),
        lambda: noise.pair_flip_transition(5, 0.3),
        lambda: np.random.default_rng(7).dirichlet(np.ones(5), size=5),
    ],
)
def test_realised_frequencies_match_t_over_100k_labels(make):
    t = make()
    n = 100_000
    clean = np.arange(n) % 5
    labels = noise.assign_noisy_labels(_ids(n), clean, t, seed=11)
    for i in range(5):
        observed = np.bincount(labels[clean == i], minlength=5)
        expected = t[i] * observed.sum()
        keep = expected > 0
        assert observed[~keep].sum() == 0  # impossible transitions never happen
        p = stats.chisquare(observed[keep], expected[keep]).pvalue
        assert p > 1e-4, (i, observed, expected)


def test_statistical_check_rejects_a_wrong_t():
    # The same check must fail when labels come from another T (here rho 0.25 vs 0.3).
    n = 100_000
    clean = np.arange(n) % 5
    labels = noise.assign_noisy_labels(_ids(n), clean, noise.symmetric_transition(5, 0.25), seed=11)
    claimed = noise.symmetric_transition(5, 0.3)
    observed = np.bincount(labels[clean == 0], minlength=5)
    assert stats.chisquare(observed, claimed[0] * observed.sum()).pvalue < 1e-4


def test_make_transition_names_unknown_model():
    with pytest.raises(ValueError, match="unknown noise.model 'flipflop'"):
        noise.make_transition("flipflop", 10, 0.2)


# --------------------------------------------------------------------------- instance-dependent noise
def _instance_data(n, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 1))
    clean = rng.integers(0, num_classes, n)
    ids = [f"toy/train/{i}" for i in range(n)]
    return ids, images, clean


def _reference_instance_labels(ids, images, clean, num_classes, rate, seed, features="raw"):
    """Xia et al.'s generator, one example at a time, with the module's random draws as its dice."""
    out = []
    for i, example_id in enumerate(ids):
        x = images[i].astype(np.float64).ravel()  # raw: the pixel values as stored, 0..255
        if features == "standardized":
            x = x / 255.0
            x = (x - x.mean()) / x.std()
        u_rate = noise.example_uniforms([b"flip-rate/" + example_id.encode()], seed)[0]
        a, b = (0 - rate) / noise.INSTANCE_RATE_STD, (1 - rate) / noise.INSTANCE_RATE_STD
        q = stats.truncnorm.ppf(u_rate, a, b, loc=rate, scale=noise.INSTANCE_RATE_STD)
        y = int(clean[i])
        scores = x @ noise.instance_projection(x.size, num_classes, seed, y)
        scores[y] = -np.inf
        p = q * np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        p[y] = 1 - q
        u = noise.example_uniforms([example_id], seed)[0]
        out.append(min(int(np.searchsorted(np.cumsum(p), u, side="right")), num_classes - 1))
    return np.array(out)


@pytest.mark.parametrize("features", ["raw", "standardized"])
def test_instance_noise_agrees_label_for_label_with_a_per_example_reimplementation(features):
    ids, images, clean = _instance_data(300)
    got = noise.instance_noisy_labels(ids, images, clean, 10, 0.4, seed=7, features=features)
    np.testing.assert_array_equal(got, _reference_instance_labels(ids, images, clean, 10, 0.4, 7, features))
    assert 0 < np.mean(got != clean) < 1


def test_instance_noise_reads_raw_pixels_by_default_and_refuses_unknown_features():
    ids, images, clean = _instance_data(500)
    default = noise.instance_noisy_labels(ids, images, clean, 10, 0.4, seed=7)
    np.testing.assert_array_equal(default, noise.instance_noisy_labels(ids, images, clean, 10, 0.4, 7, "raw"))
    np.testing.assert_array_equal(noise.instance_features(images), images.reshape(500, -1).astype(np.float64))
    standardized = noise.instance_noisy_labels(ids, images, clean, 10, 0.4, 7, features="standardized")
    flipped = (default != clean) & (standardized != clean)
    assert np.mean(default[flipped] != standardized[flipped]) > 0.3  # the features decide where flips go
    with pytest.raises(ValueError, match="`features` must be one of raw, standardized, got 'standardised'"):
        noise.instance_noisy_labels(ids, images, clean, 10, 0.4, 7, features="standardised")


@pytest.mark.parametrize("features", ["raw", "standardized"])
def test_instance_noise_is_a_pure_function_of_each_example(features):
    ids, images, clean = _instance_data(200)
    labels = noise.instance_noisy_labels(ids, images, clean, 10, 0.3, seed=1, features=features)
    order = np.random.default_rng(0).permutation(200)
    shuffled = noise.instance_noisy_labels(
        [ids[i] for i in order], images[order], clean[order], 10, 0.3, seed=1, features=features
    )
    np.testing.assert_array_equal(shuffled, labels[order])
    halves = [
        noise.instance_noisy_labels(ids[s], images[s], clean[s], 10, 0.3, seed=1, features=features)
        for s in (slice(0, 77), slice(77, None))
    ]
    np.testing.assert_array_equal(np.concatenate(halves), labels)
    other_seed = noise.instance_noisy_labels(ids, images, clean, 10, 0.3, seed=2, features=features)
    assert not np.array_equal(other_seed, labels)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_instance_noise_realised_rate_is_within_binomial_error_of_rho(rate):
    n = 4000
    ids, images, clean = _instance_data(n, seed=3)
    realised = np.mean(noise.instance_noisy_labels(ids, images, clean, 10, rate, seed=0) != clean)
    stderr = np.sqrt(rate * (1 - rate) / n)
    assert abs(realised - rate) < 3 * stderr, (realised, rate)
    # The flip rates' truncated normal has mean instance_expected_rate (0.2055 at rho = 0.2), as scipy says.
    expected = noise.instance_expected_rate(rate)
    a, b = -rate / noise.INSTANCE_RATE_STD, (1 - rate) / noise.INSTANCE_RATE_STD
    assert expected == pytest.approx(stats.truncnorm.mean(a, b, loc=rate, scale=noise.INSTANCE_RATE_STD))
    assert abs(realised - expected) < 3 * stderr
    rates = noise.instance_flip_rates(ids, rate, seed=0)
    assert rates.min() >= 0 and rates.max() <= 1 and rates.std() > 0.05  # per example, not one rate


@pytest.mark.parametrize("features", ["raw", "standardized"])
def test_instance_flips_follow_the_image_projection_not_the_class(features):
    n, num_classes, seed = 3000, 10, 5
    ids, images, clean = _instance_data(n, seed=4)
    labels = noise.instance_noisy_labels(ids, images, clean, num_classes, 0.4, seed=seed, features=features)
    x = noise.instance_features(images, features)
    flipped = np.flatnonzero(labels != clean)
    # Where a flip goes: the top projection score among the other classes, almost always.
    top = []
    for i in flipped:
        scores = x[i] @ noise.instance_projection(x.shape[1], num_classes, seed, clean[i])
        scores[clean[i]] = -np.inf
        top.append(np.argmax(scores))
    agreement = np.mean(np.array(top) == labels[flipped])
    assert agreement > 0.8, agreement  # chance: 1/9
    # Class-conditional noise could not do this; symmetric noise with the same dice does not.
    t = noise.symmetric_transition(num_classes, 0.4)
    symmetric = noise.assign_noisy_labels(ids, clean, t, seed)
    sym_flipped = np.flatnonzero(symmetric != clean)
    sym_top = [
        np.argmax(np.where(np.arange(num_classes) == clean[i], -np.inf,
                           x[i] @ noise.instance_projection(x.shape[1], num_classes, seed, clean[i])))
        for i in sym_flipped
    ]  # fmt: skip
    assert np.mean(np.array(sym_top) == symmetric[sym_flipped]) < 0.25
    # Within one class, the flips go to several classes (an image's projection decides which).
    assert len(set(labels[flipped][clean[flipped] == 0])) >= 3


def test_instance_noise_is_a_registered_model_without_a_transition():
    model = noise.NOISE_MODELS["instance"]
    assert model.instance and model.uses_rate and not model.per_example
    assert noise.make_transition("instance", 10, 0.2) is None
    assert model.data_label(0.4) == "instance0.4"


# ------------------------------------------- instance-dependent noise against Xia et al.'s published algorithm
def _published_instance_labels(images, clean, num_classes, rate, seed, projections):
    """Xia et al.'s `get_instance_noisy_label` (tools.py of their Part-dependent-label-noise code) in NumPy.

    One global RNG, seeded once, draws every example's flip rate q (scipy's truncated normal around
    `rate`, std 0.1, on [0, 1]) and then every label. For (x, y), x the image's pixel values as stored,
    flattened: scores x W[y], the own class's set to -inf, softmax, times q, plus 1 - q on y; the label
    is drawn from that row. W[y] = projections[y] (the original draws W from the same RNG; here both
    generators get the same W).
    """
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        std = noise.INSTANCE_RATE_STD
        q = stats.truncnorm((0 - rate) / std, (1 - rate) / std, loc=rate, scale=std).rvs(len(clean))
        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        rows = []
        for i, y in enumerate(clean):
            scores = x[i] @ projections[y]
            scores[y] = -np.inf
            softmax = np.exp(scores - scores.max())
            row = q[i] * softmax / softmax.sum()
            row[y] += 1 - q[i]
            rows.append(row)
        return np.array([np.random.choice(num_classes, p=row) for row in rows])
    finally:
        np.random.set_state(state)


def _flip_concentration(clean, noisy, num_classes):
    """The share of a class's flips that land on its most frequent destination, averaged over the classes,
    and its standard error (binomial, per class, given the class's flips)."""
    shares, variances = [], []
    for c in range(num_classes):
        counts = np.bincount(noisy[(clean == c) & (noisy != c)], minlength=num_classes)
        share = counts.max() / counts.sum()
        shares.append(share)
        variances.append(share * (1 - share) / counts.sum())
    return float(np.mean(shares)), float(np.sqrt(np.sum(variances)) / num_classes)


def _fashion_mnist_images(n):
    """The first n Fashion-MNIST training images and labels, as noisify reads them (Debian's IDX files)."""
    from label_smearing.beam_core.sources import IdxSource
    from label_smearing.core.datasets import DATASETS

    known = DATASETS["fashion_mnist"]
    if not os.path.isdir(known.idx_dir):
        pytest.skip(f"no Fashion-MNIST in {known.idx_dir} (apt-get install {known.idx_package}); "
                    "the generated images' case runs instead")  # fmt: skip
    return IdxSource("fashion_mnist", known.idx_dir).read("train", 0, n)


def _generated_images(n, num_classes=10, seed=0):
    """n deterministic 28x28 uint8 images like a clothing dataset's: each class a pattern of lit pixels,
    shifted, brightened and noised per image (so a class's images share a shape but not its position)."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(size=(num_classes, 28, 28)) < 0.35
    clean = np.arange(n) % num_classes
    shifts = rng.integers(-4, 5, (n, 2))
    images = np.stack([np.roll(patterns[y], tuple(shift), axis=(0, 1)) for y, shift in zip(clean, shifts)])
    images = images * rng.uniform(120, 255, (n, 1, 1)) + rng.normal(0, 25, images.shape)
    return np.clip(np.round(images), 0, 255).astype(np.uint8)[..., None], clean


@pytest.mark.parametrize("images_from", ["fashion_mnist", "generated"])
def test_instance_flips_go_where_xia_et_al_s_algorithm_sends_them_on_the_same_images_and_w(images_from):
    # The audit's measure: the share of a class's flips that land on its top destination. Ours (raw
    # features) and the published algorithm, on the same images with the same W, differ only in their
    # dice (keyed hashes vs one global RNG), so by sampling error alone; the standardised variant
    # is another generator (it removes each image's mean, which points every image of a class one way).
    n, num_classes, rate, seed = 10_000, 10, 0.4, 0
    images, clean = _fashion_mnist_images(n) if images_from == "fashion_mnist" else _generated_images(n)
    ids = [f"{images_from}/train/{i}" for i in range(n)]
    projections = [
        noise.instance_projection(images[0].size, num_classes, seed, y) for y in range(num_classes)
    ]
    published = _published_instance_labels(images, clean, num_classes, rate, seed, projections)
    ours = {
        features: noise.instance_noisy_labels(ids, images, clean, num_classes, rate, seed, features=features)
        for features in noise.INSTANCE_FEATURES
    }
    reference = _flip_concentration(clean, published, num_classes)
    raw, standardized = (_flip_concentration(clean, ours[f], num_classes) for f in ("raw", "standardized"))
    print(
        f"{images_from}: flip-destination concentration, published {reference[0]:.3f} ± {reference[1]:.3f}, "
        f"ours raw {raw[0]:.3f} ± {raw[1]:.3f}, ours standardized {standardized[0]:.3f} ± {standardized[1]:.3f}"
    )
    # The same flip rate (both draw q from the same truncated normal): within binomial error.
    realised = [np.mean(labels != clean) for labels in (published, ours["raw"])]
    assert abs(realised[0] - realised[1]) < 4 * np.sqrt(2 * rate * (1 - rate) / n), realised
    # Where the flips go: ours within 4 standard errors of the difference of the published algorithm's.
    assert abs(raw[0] - reference[0]) < 4 * np.hypot(raw[1], reference[1]), (raw, reference)
    # The standardised variant is clearly less concentrated (this is what the audit found, 0.51 vs 0.68).
    assert reference[0] - standardized[0] > max(0.05, 4 * np.hypot(standardized[1], reference[1])), (
        standardized, reference,
    )  # fmt: skip
