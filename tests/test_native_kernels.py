"""The native 1-bit kernels against the torch reference of the exact semantics:
y = addcmul(bn_shift, acc * beta, bn_scale) + residual (the folded BatchNorm is one FMA, as
torch's addcmul and ATen's eval BatchNorm on every SIMD x86 capability), acc = conv2d(sign(x),
sign(W)) with zero padding, sign(v) = +1 for v >= 0. Every case runs on each ISA path this CPU
offers (the portable one everywhere) and compares with torch.equal: integers exactly, floats bit
for bit. Under ATEN_CPU_CAPABILITY=default torch's addcmul is unfused: the epilogue tests skip."""

import math
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cpnas_cli.engine.deploy.native import library

needs_library = pytest.mark.skipif(not library.available(), reason=f"native library: {library.why_unavailable()}")
needs_fused_torch = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() == "DEFAULT",
    reason="ATEN_CPU_CAPABILITY=default: torch's addcmul rounds twice, the engine's FMA once",
)


def isa_param(name: str):
    reason = f"this CPU does not offer {name}" if library.available() else library.why_unavailable()
    return pytest.param(name, marks=pytest.mark.skipif(not library.isa_supported(name), reason=reason), id=name)


ISA_PARAMS = [isa_param(name) for name in library.ISAS]


@pytest.fixture(params=ISA_PARAMS)
def isa(request, monkeypatch):
    monkeypatch.setenv(library.ISA_VARIABLE, request.param)
    return request.param


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1.0, -1.0)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def reference_acc(x, weight, stride, padding, dilation, groups) -> torch.Tensor:
    """The exact integer acc, as float32 (exact: |acc| <= fan-in < 2^24, asserted)."""
    acc = F.conv2d(sign(x), sign(weight), None, stride, padding, dilation, groups)
    assert weight[0].numel() < 2**24 and torch.equal(acc, acc.round())
    return acc


def random_input(batch, channels, height, width, generator) -> torch.Tensor:
    x = torch.randn(batch, channels, height, width, generator=generator)
    x[x.abs() < 0.05] = -0.0  # -0.0 must binarize to +1
    return nhwc(x)


# (in_c, out_c, kernel, stride, padding, dilation, groups, height, width, batch)
CASES = {
    "1x1 64": (64, 64, 1, 1, 0, 1, 1, 8, 8, 2),
    "1x1 24->48": (24, 48, 1, 1, 0, 1, 1, 7, 7, 1),
    "1x1 168->224": (168, 224, 1, 1, 0, 1, 1, 7, 7, 1),
    "1x1 448->72": (448, 72, 1, 1, 0, 1, 1, 5, 5, 1),
    "1x1 stride 2 (FactorizedReduce)": (56, 28, 1, 2, 0, 1, 1, 15, 15, 2),
    "3x3 64": (64, 64, 3, 1, 1, 1, 1, 8, 8, 2),
    "3x3 72->56 stride 2": (72, 56, 3, 2, 1, 1, 1, 15, 15, 1),
    "3x3 16->24": (16, 24, 3, 1, 1, 1, 1, 7, 7, 3),
    "3x3 130->70": (130, 70, 3, 1, 1, 1, 1, 9, 9, 1),
    "3x3 on 1x1 input": (64, 40, 3, 1, 1, 1, 1, 1, 1, 2),
    "5x5 32 stride 2": (32, 32, 5, 2, 2, 1, 1, 15, 15, 1),
    "grouped 3x3 48/16": (48, 48, 3, 1, 1, 1, 3, 7, 7, 2),
    "grouped 3x3 24/8 stride 2": (24, 24, 3, 2, 1, 1, 3, 15, 15, 1),
    "grouped 5x5 72/8": (72, 72, 5, 1, 2, 1, 9, 7, 7, 1),
    "grouped 5x5 224/16 stride 2": (224, 224, 5, 2, 2, 1, 14, 15, 15, 1),
    "grouped dil 3x3 48/16": (48, 48, 3, 1, 2, 2, 3, 7, 7, 1),
    "grouped dil 5x5 56/8 stride 2": (56, 56, 5, 2, 4, 2, 7, 15, 15, 1),
    "grouped 3x3 20/4 (lanes span groups)": (20, 20, 3, 1, 1, 1, 5, 7, 7, 1),
    "grouped 3x3 256/128 (two words a group)": (256, 64, 3, 1, 1, 1, 2, 5, 5, 1),
    "grouped 3x3 32->64/16 (32 outputs a group)": (32, 64, 3, 1, 1, 1, 2, 7, 7, 2),
    "grouped 1x1 64/16": (64, 64, 1, 1, 0, 1, 4, 6, 5, 2),
    "grouped 1x1 64->32/32 (whole halfwords)": (64, 32, 1, 1, 0, 1, 2, 5, 5, 1),
    "depth-wise 3x3 16": (16, 16, 3, 1, 1, 1, 16, 7, 7, 2),
    "depth-wise 5x5 56 stride 2": (56, 56, 5, 2, 2, 1, 56, 15, 15, 1),
    "depth-wise dil 3x3 168": (168, 168, 3, 1, 2, 2, 168, 7, 7, 1),
    "depth-wise dil 5x5 72": (72, 72, 5, 1, 4, 2, 72, 7, 7, 1),
    "depth-wise 3x3 224 stride 2": (224, 224, 3, 2, 1, 1, 224, 15, 15, 1),
    "depth-wise 3x3 448 (7 words)": (448, 448, 3, 1, 1, 1, 448, 5, 5, 1),
    "depth-wise x2 multiplier (general kernel)": (24, 48, 3, 1, 1, 1, 24, 7, 7, 1),
}


def run_case(case, seed=0, epilogue=False, output="float"):
    in_c, out_c, k, stride, padding, dilation, groups, height, width, batch = case
    generator = torch.Generator().manual_seed(seed)
    x = random_input(batch, in_c, height, width, generator)
    weight = torch.randn(out_c, in_c // groups, k, k, generator=generator)
    acc = reference_acc(x, weight, stride, padding, dilation, groups)
    geometry = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if not epilogue:
        return library.BinaryConvPlan(weight, **geometry, output=output)(x), acc
    beta, scale, shift = (
        torch.rand(out_c, generator=generator) + 0.1,
        torch.randn(out_c, generator=generator),
        torch.randn(out_c, generator=generator),
    )
    residual = nhwc(torch.randn(acc.shape, generator=generator))
    plan = library.BinaryConvPlan(weight, beta, **geometry, bn_scale=scale, bn_shift=shift, output=output)
    return plan(x, residual), folded(acc * beta.view(1, -1, 1, 1), scale, shift) + residual


def folded(y: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The folded BatchNorm as torch computes it: one FMA (packing.folded_affine)."""
    return torch.addcmul(shift.view(1, -1, 1, 1), y, scale.view(1, -1, 1, 1))


# --- build ----------------------------------------------------------------------------------


def test_library_is_built_where_gcc_exists():
    """A broken build must not pass silently: with a C compiler present the library must load."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler on this machine: the torch path is expected")
    assert library.available(), library.why_unavailable()


@needs_library
def test_isa_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv(library.ISA_VARIABLE, "portable")
    assert library.isa() == "portable"
    weight, x = torch.randn(8, 8, 1, 1), nhwc(torch.randn(1, 8, 2, 2))
    plan = library.BinaryConvPlan(weight)
    monkeypatch.setenv(library.ISA_VARIABLE, " Portable ")  # the library reads it too: spelt loosely, still taken
    assert torch.equal(plan(x), reference_acc(x, weight, 1, 0, 1, 1))
    monkeypatch.setenv(library.ISA_VARIABLE, "sse9")
    with pytest.raises(ValueError, match="expected one of"):
        library.isa()
    with pytest.raises(ValueError, match="expected one of"):
        plan(x)
    monkeypatch.delenv(library.ISA_VARIABLE)
    assert library.isa() in library.ISAS and library.isa_supported(library.isa())


# --- packing --------------------------------------------------------------------------------


def numpy_pack(x: torch.Tensor) -> np.ndarray:
    bits = x.permute(0, 2, 3, 1).numpy() >= 0
    padded = np.zeros((*bits.shape[:3], -(-bits.shape[3] // 64) * 64), dtype=bool)
    padded[..., : bits.shape[3]] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<i8")


@pytest.mark.parametrize("channels", [1, 15, 16, 63, 64, 65, 200, 448])
def test_pack_matches_the_sign_convention(isa, channels):
    x = random_input(2, channels, 3, 5, torch.Generator().manual_seed(channels))
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, -1e-30])
    packed = library.pack_activations(x)
    assert packed.shape == (2, channels, 3, 5)
    assert np.array_equal(packed.words.numpy(), numpy_pack(x))


# --- exact acc on every op ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_acc_is_the_exact_integer(isa, case):
    y, acc = run_case(case)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, acc)


def random_cases(count: int, seed: int = 16):
    chooser = random.Random(seed)
    for _ in range(count):
        in_c = chooser.choice([8, 16, 24, 40, 48, 56, 64, 72, 96, 136, 168, 224])
        style = chooser.choice(["dense", "grouped", "depth-wise"])
        groups = {"dense": 1, "grouped": in_c // math.gcd(in_c, 16), "depth-wise": in_c}[style]
        out_c = in_c if style != "dense" else chooser.choice([8, 24, 56, 64, 72, 120])
        k, dilation = chooser.choice([(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
        padding = chooser.choice([0, k // 2, dilation * (k - 1) // 2, dilation * (k - 1)])
        size = chooser.randint(max(1, dilation * (k - 1) + 1 - 2 * padding), 17)
        yield (
            in_c,
            out_c,
            k,
            chooser.choice([1, 2]),
            padding,
            dilation,
            groups,
            size,
            chooser.randint(max(1, dilation * (k - 1) + 1 - 2 * padding), 17),
            chooser.choice([1, 1, 2, 3]),
        )


@pytest.mark.parametrize("case", list(random_cases(24)), ids=str)
def test_random_shapes(isa, case):
    y, acc = run_case(case, seed=sum(case))
    assert torch.equal(y, acc)


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("1x1 64", "dense"),
        ("3x3 130->70", "dense"),
        ("grouped 3x3 48/16", "pairs"),
        ("grouped 3x3 32->64/16 (32 outputs a group)", "pairs"),
        ("grouped 5x5 224/16 stride 2", "pairs"),
        ("grouped 3x3 256/128 (two words a group)", "window"),
        ("grouped 3x3 24/8 stride 2", "masked"),
        ("depth-wise 3x3 448 (7 words)", "depth-wise"),
    ],
)
def test_weights_take_the_bits_the_layout_promises(case, kind):
    """dense: ceil(in_c / 32) halfwords per output channel and tap; pairs and window: exactly the
    model file's bits (an odd group count adds one empty half per block); depth-wise:
    ceil(c / 64) words per tap; masked: each lane's halfwords plus a mask."""
    in_c, out_c, k, *_, groups, _, _, _ = CASES[case]
    taps, group_in = k * k, in_c // groups
    plan = library.BinaryConvPlan(torch.randn(out_c, group_in, k, k), groups=groups)
    assert plan.kind == kind
    weight_bits = plan._arrays["weights"].numel() * plan._arrays["weights"].element_size() * 8
    file_bits = out_c * group_in * taps
    expected = {
        "dense": out_c * taps * -(-in_c // 32) * 32,
        "pairs": file_bits + (groups % 2) * (out_c // groups) * 16 * taps,
        "window": file_bits,
        "depth-wise": taps * -(-in_c // 64) * 64,
    }
    if kind == "masked":
        assert file_bits < weight_bits <= out_c * taps * 32 * (-(-group_in // 32) + 1) and "masks" in plan._arrays
    else:
        assert weight_bits == expected[kind] and "masks" not in plan._arrays


@needs_fused_torch
def test_a_chain_runs_its_layers_in_one_call_as_the_plans_do(isa):
    """float -> 3x3 (bits) -> depth-wise (bits) -> 1x1 + residual (float), one C call, against
    the layers called one by one; then the last layer alone."""
    generator = torch.Generator().manual_seed(11)
    x = random_input(2, 40, 9, 9, generator)

    def vectors(c):
        return {"bn_scale": torch.randn(c, generator=generator), "bn_shift": torch.randn(c, generator=generator)}

    first = library.BinaryConvPlan(
        torch.randn(48, 40, 3, 3, generator=generator), padding=1, output="bits", **vectors(48)
    )
    middle = library.BinaryConvPlan(
        torch.randn(48, 1, 3, 3, generator=generator), padding=1, groups=48, output="bits", **vectors(48)
    )
    last = library.BinaryConvPlan(
        torch.randn(24, 48, 1, 1, generator=generator), torch.rand(24, generator=generator), **vectors(24)
    )
    residual = nhwc(torch.randn(2, 24, 9, 9, generator=generator))
    expected = last(middle(first(x)), residual)
    a, b = first(x), middle(first(x))
    out = nhwc(torch.full((2, 24, 9, 9), float("nan")))
    workspace = torch.empty(2, 9, 9, 1, dtype=torch.int64)
    chain = library.Chain([first.bound(2, 9, 9), middle.bound(2, 9, 9), last.bound(2, 9, 9)])
    addresses = [
        {"x": x.data_ptr(), "x_bits": workspace.data_ptr(), "out_bits": a.words.data_ptr()},
        {"x_bits": a.words.data_ptr(), "out_bits": b.words.data_ptr()},
        {"x_bits": b.words.data_ptr(), "residual": residual.data_ptr(), "out": out.data_ptr()},
    ]
    a.words.fill_(0), b.words.fill_(0)
    for call, fields in zip(chain.calls, addresses, strict=True):
        for name, address in fields.items():
            setattr(call, name, address)
    chain.run()
    assert torch.equal(out, expected)
    out.fill_(float("nan"))
    chain.run_one(2)
    assert torch.equal(out, expected)


# --- fused epilogue -------------------------------------------------------------------------


EPILOGUE_CASES = {
    name: CASES[name]
    for name in (
        "1x1 168->224",
        "3x3 72->56 stride 2",
        "grouped 5x5 72/8",
        "depth-wise dil 3x3 168",
        "3x3 on 1x1 input",
    )
}


@needs_fused_torch
@pytest.mark.parametrize("case", EPILOGUE_CASES.values(), ids=EPILOGUE_CASES.keys())
def test_fused_epilogue_is_bit_identical_to_torch_addcmul(isa, case):
    y, expected = run_case(case, seed=3, epilogue=True)
    assert torch.equal(y, expected)


@needs_fused_torch
@pytest.mark.parametrize("case", EPILOGUE_CASES.values(), ids=EPILOGUE_CASES.keys())
def test_bits_output_is_the_sign_of_the_epilogue(isa, case):
    bits, expected = run_case(case, seed=4, epilogue=True, output="bits")
    assert isinstance(bits, library.PackedActivations)
    assert np.array_equal(bits.words.numpy(), numpy_pack(expected))


def test_epilogue_without_bn_is_acc_times_beta(isa):
    generator = torch.Generator().manual_seed(5)
    x, weight, beta = (
        random_input(1, 56, 7, 7, generator),
        torch.randn(56, 56, 3, 3, generator=generator),
        torch.rand(56),
    )
    y = library.BinaryConvPlan(weight, beta, padding=1)(x)
    assert torch.equal(y, reference_acc(x, weight, 1, 1, 1, 1) * beta.view(1, -1, 1, 1))


@needs_fused_torch
def test_bits_chain_into_the_next_conv(isa):
    """A depth-wise conv emitting bits feeds a 1x1 conv directly, as in a separable op."""
    generator = torch.Generator().manual_seed(6)
    x = random_input(2, 72, 9, 9, generator)
    depthwise, pointwise = torch.randn(72, 1, 3, 3, generator=generator), torch.randn(48, 72, 1, 1, generator=generator)
    scale, shift = torch.randn(72, generator=generator), torch.randn(72, generator=generator)
    middle = library.BinaryConvPlan(depthwise, padding=1, groups=72, bn_scale=scale, bn_shift=shift, output="bits")(x)
    y = library.BinaryConvPlan(pointwise)(middle)
    between = folded(reference_acc(x, depthwise, 1, 1, 1, 72), scale, shift)
    assert torch.equal(y, reference_acc(between, pointwise, 1, 0, 1, 1))


def test_out_buffers_are_written_in_place(isa):
    generator = torch.Generator().manual_seed(9)
    x, weight = random_input(2, 40, 6, 6, generator), torch.randn(24, 40, 3, 3, generator=generator)
    float_plan, bits_plan = (
        library.BinaryConvPlan(weight, padding=1),
        library.BinaryConvPlan(weight, padding=1, output="bits"),
    )
    out = nhwc(torch.full((2, 24, 6, 6), float("nan")))
    bits = library.PackedActivations(torch.full((2, 6, 6, 1), -1, dtype=torch.int64), 24)
    assert float_plan(x, out=out) is out and bits_plan(x, out=bits) is bits
    acc = reference_acc(x, weight, 1, 1, 1, 1)
    assert torch.equal(out, acc) and np.array_equal(bits.words.numpy(), numpy_pack(acc))
    assert torch.equal(float_plan(x), acc)  # the plan's input workspace is reused safely


def test_threads_give_the_same_result(isa):
    case = CASES["grouped 5x5 224/16 stride 2"]
    one, _ = run_case(case, seed=7, epilogue=True)
    torch.set_num_threads(2)
    two, _ = run_case(case, seed=7, epilogue=True)
    assert torch.equal(one, two)


# --- misuse ---------------------------------------------------------------------------------


@needs_library
def test_misuse_raises_value_error():
    plan = library.BinaryConvPlan(torch.randn(16, 8, 3, 3), padding=1)
    x = nhwc(torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match="channels_last"):
        plan(torch.randn(1, 8, 5, 5)[:, :, :, :].contiguous().transpose(2, 3))
    with pytest.raises(ValueError, match="float32"):
        plan(x.double())
    with pytest.raises(ValueError, match="channels"):
        plan(nhwc(torch.randn(1, 9, 5, 5)))
    with pytest.raises(ValueError, match="residual"):
        plan(x, nhwc(torch.randn(1, 16, 4, 4)))
    with pytest.raises(ValueError, match="out"):
        plan(x, out=nhwc(torch.empty(1, 16, 5, 4)))
    with pytest.raises(ValueError, match="packed words"):
        plan(library.PackedActivations(torch.zeros(1, 5, 5, 2, dtype=torch.int64), 8))
    with pytest.raises(ValueError, match="too small"):
        library.BinaryConvPlan(torch.randn(4, 8, 3, 3))(nhwc(torch.randn(1, 8, 2, 2)))
    with pytest.raises(ValueError, match="groups"):
        library.BinaryConvPlan(torch.randn(15, 8, 3, 3), groups=2)
    with pytest.raises(ValueError, match="output"):
        library.BinaryConvPlan(torch.randn(16, 8, 3, 3), output="int8")
    with pytest.raises(ValueError, match="go together"):
        library.BinaryConvPlan(torch.randn(16, 8, 3, 3), bn_scale=torch.ones(16))
    with pytest.raises(ValueError, match="beta"):
        library.BinaryConvPlan(torch.randn(16, 8, 3, 3), torch.ones(15))


@needs_fused_torch
def test_the_epilogue_is_an_fma(isa):
    """One rounding: the result equals an FMA emulated in float64 (exact product, one rounding of
    the sum) and differs from mul-then-add for some elements, so the bit-identity above really
    pins the op order down; torch's addcmul and eval BatchNorm compute the same FMA."""
    generator = torch.Generator().manual_seed(8)
    x, weight = random_input(4, 64, 8, 8, generator), torch.randn(64, 64, 3, 3, generator=generator)
    beta, scale, shift = (
        torch.rand(64, generator=generator),
        torch.randn(64, generator=generator),
        torch.randn(64, generator=generator),
    )
    y = library.BinaryConvPlan(weight, beta, padding=1, bn_scale=scale, bn_shift=shift)(x)
    scaled = reference_acc(x, weight, 1, 1, 1, 1) * beta.view(1, -1, 1, 1)
    emulated = (scaled.double() * scale.double().view(1, -1, 1, 1) + shift.double().view(1, -1, 1, 1)).float()
    batch_norm = F.batch_norm(scaled, torch.zeros(64), torch.ones(64), scale, shift, eps=0.0)
    assert torch.equal(y, emulated) and torch.equal(y, folded(scaled, scale, shift))
    assert torch.equal(y, batch_norm)
    assert not torch.equal(y, scaled * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))
