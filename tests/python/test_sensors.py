"""The sensors as functions: simic.gradient_health, layer_gradients and
nan_inf_scan against float64 references computed here, at their bounds."""
import collections.abc
import math

import pytest
import torch

import simic


def named_grads(*grads):
    """(name, parameter) pairs whose gradients are `grads`."""
    out = []
    for i, g in enumerate(grads):
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        out.append((f"p{i}", p))
    return out


def test_gradient_health_against_float64_norms():
    torch.manual_seed(1)
    grads = [torch.randn(7, 5), torch.randn(11), torch.randn(3, 3, 2)]
    r = simic.gradient_health(named_grads(*grads))
    norms = [math.sqrt(float((g.double() ** 2).sum())) for g in grads]
    assert r["total_norm"] == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-6)
    assert r["min_param_norm"] == pytest.approx(min(norms), rel=1e-6)
    assert r["max_param_norm"] == pytest.approx(max(norms), rel=1e-6)
    assert r["parameters"] == 3
    assert (r["nan_count"], r["inf_count"]) == (0, 0)
    assert r["health"] == 1.0


def test_layer_gradients_against_float64_and_the_small_and_large_bounds():
    # small: |g| < 1e-6, large: |g| > 10 (the defaults); values below, at and
    # above each, in float64 so that "at" is the bound itself (float32's
    # nearest value to 1e-6 lies below it).
    g = torch.tensor([0.0, 0.5e-6, 1e-6, 2e-6, 9.999, 10.0, 10.001, -3.0], dtype=torch.float64)
    (layer,) = simic.layer_gradients(named_grads(g))["layers"]
    d = g.double()
    assert layer["name"] == "p0"
    assert layer["numel"] == 8
    assert layer["norm"] == pytest.approx(math.sqrt(float((d ** 2).sum())), rel=1e-12)
    assert layer["mean"] == pytest.approx(float(d.mean()), rel=1e-12)
    assert layer["std"] == pytest.approx(float(d.std(unbiased=False)), rel=1e-12)
    assert (layer["min"], layer["max"]) == (-3.0, 10.001)
    assert layer["zero_fraction"] == 1 / 8
    # 0 and 0.5e-6 are small (1e-6 itself is not); only 10.001 is large (10 itself is not).
    assert layer["small_fraction"] == 2 / 8
    assert layer["large_fraction"] == 1 / 8
    assert (layer["dead"], layer["exploding"]) == (False, True)  # exploding: large_fraction > 0.1


def test_layer_gradients_names_dead_layers_and_counts_missing_gradients():
    params = named_grads(torch.zeros(10), torch.ones(10))
    params.append(("no_grad", torch.zeros(3, requires_grad=True)))
    r = simic.layer_gradients(params)
    assert r["dead_layers"] == ["p0"]  # zero_fraction 1 > 0.9
    assert r["exploding_layers"] == []
    assert r["skipped_without_grad"] == 1


def test_nan_inf_scan_names_the_parameters_and_the_loss():
    params = named_grads(torch.ones(4), torch.ones(4), torch.ones(4))
    params[1][1].grad[2] = float("nan")
    with torch.no_grad():
        params[2][1][0] = float("-inf")
    r = simic.nan_inf_scan(params, loss=float("inf"))
    assert [o["name"] for o in r["offenders"]] == ["p1", "p2"]
    assert r["offenders"][0]["grad_nan"] and not r["offenders"][0]["grad_inf"]
    assert r["offenders"][1]["weight_inf"] and not r["offenders"][1]["weight_nan"]
    assert r["loss_finite"] is False
    assert r["clean"] is False
    assert r["parameters_scanned"] == 3
    clean = simic.nan_inf_scan(named_grads(torch.full((2,), -5.0)))
    assert clean["clean"] is True
    assert "loss_finite" not in clean  # no loss given
    assert clean["max_abs_grad"] == 5.0


def test_a_module_a_list_a_tuple_and_a_generator_give_the_same_figures():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    model(torch.randn(5, 4)).pow(2).sum().backward()
    pairs = list(model.named_parameters())
    reference = [math.sqrt(float((p.grad.double() ** 2).sum())) for _, p in pairs]
    for source in (model, pairs, tuple(pairs), model.named_parameters()):
        r = simic.gradient_health(source)
        assert r["parameters"] == 4
        assert r["total_norm"] == pytest.approx(math.sqrt(sum(n * n for n in reference)), rel=1e-6)
    names = [layer["name"] for layer in simic.layer_gradients(tuple(pairs))["layers"]]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_the_sensor_functions_refuse_bad_input_naming_it():
    with pytest.raises(TypeError, match=r"items must be \(name, tensor\)"):
        simic.gradient_health([("w", 1.0)])
    with pytest.raises(TypeError, match=r"items must be \(name, tensor\)"):
        simic.layer_gradients([torch.ones(2)])
    with pytest.raises(TypeError, match="loss must be a number or None"):
        simic.nan_inf_scan(named_grads(torch.ones(2)), loss="nan")
    with pytest.raises(TypeError):
        simic.gradient_health(None)


def test_the_layers_are_a_sequence_whose_dicts_are_made_when_read():
    g0, g1 = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0, 1e3])
    layers = simic.layer_gradients(named_grads(g0, g1))["layers"]
    assert isinstance(layers, collections.abc.Sequence) and len(layers) == 2
    assert [l["name"] for l in layers] == ["p0", "p1"]  # iteration stops at the end (IndexError)
    assert layers[-1]["name"] == "p1" and layers[-2]["name"] == "p0"
    assert layers[0]["norm"] == 5.0 and layers[1]["norm"] == 1000.0  # by hand: sqrt(9 + 16), sqrt(1e6)
    assert math.isclose(layers[1]["zero_fraction"], 2.0 / 3.0, rel_tol=1e-12)
    assert layers[1]["large_fraction"] == pytest.approx(1.0 / 3.0, rel=1e-12)  # |g| > 10
    assert layers[0] == layers[0] and layers[0] is not layers[0]  # a new dict each read: changing one changes nothing
    for bad in (2, -3):
        with pytest.raises(IndexError, match=rf"index {bad} is out of range; valid: \[-2, 2\)"):
            layers[bad]
    with pytest.raises(TypeError):
        layers["p0"]
    assert len(simic.layer_gradients([])["layers"]) == 0
