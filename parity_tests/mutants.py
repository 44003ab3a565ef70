"""The mutation catalogue: realistic porting mistakes, one text substitution each.

Every :class:`Mutant` names one file, the exact snippet of the current source (``original``)
and what a plausible mistake would have written instead (``replacement``). The runner
(:mod:`parity_tests.mutation`) applies one mutant at a time to a *copy* of the repository
and reports whether the parity command and the mutant's tests notice. ``original`` must
occur exactly once in the file; otherwise the mutant is reported as STALE (never skipped
silently), and ``parity_tests/test_mutation.py`` fails naming its id, so a code change
that moves a snippet forces the catalogue to be updated with it.

Fields besides the substitution:

* ``category``: one of :data:`CATEGORIES` (which side of the port holds the mistake);
* ``description``: the mistake, in one line;
* ``tests``: the test paths (files or pytest node ids) that should catch it. The runner
  runs ``pytest -x -q <tests>`` instead of the whole suite (minutes per mutant); the paths
  are the test files of the mutated code, fastest-failing first. ``--full-suite`` runs
  everything instead;
* ``equivalent``: set (to the reason) when the mutant cannot change any observable result
  that SPEC.md defines; such mutants are run too, and must *not* be caught;
* ``command_blind``: set (to the reason) when the parity command cannot see the mistake
  by construction: it compares bitorch with bitorch_jax, so a change to code both
  frameworks share changes both sides alike, and code the command never runs (BatchNorm
  and Flax-to-torch conversion) is outside it. These count against the tests only.

Snippets were copied from the sources; when one goes stale, copy the new text.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "Mutant", "MUTANTS", "by_id"]

CATEGORIES = (
    "torch quantizer",
    "jax quantizer",
    "torch layer",
    "jax layer",
    "conversion",
    "shared",
)

# Test paths, grouped by what they cover (fastest to fail first).
T_TORCH_Q = ("tests/torch/test_quantizations.py", "tests/test_spec_worked_values.py")
T_JAX_Q = ("tests/jax/test_quantizations.py", "tests/test_spec_worked_values.py")
T_LAYERS = ("tests/layers/test_layer_arguments.py", "tests/layers/test_layer_parity.py")
T_JAX_LAYERS = (*T_LAYERS, "tests/jax/test_flax.py")
T_CONVERT = ("tests/layers/test_convert.py", "tests/layers/test_layer_parity.py")


@dataclass(frozen=True, kw_only=True)
class Mutant:
    """One porting mistake: replace ``original`` (exactly once in ``file``) by ``replacement``."""

    id: str
    category: str
    file: str
    original: str
    replacement: str
    description: str
    tests: tuple[str, ...]
    equivalent: str | None = None
    command_blind: str | None = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.id}: category must be one of {CATEGORIES}")
        if self.original == self.replacement:
            raise ValueError(f"{self.id}: the replacement equals the original")
        if not self.tests:
            raise ValueError(f"{self.id}: no test paths")


_SHARED_BLIND = (
    "code both frameworks share: bitorch and bitorch_jax change alike, so comparing "
    "them cannot show it; only tests against an independent reference can"
)

M = Mutant

MUTANTS: tuple[Mutant, ...] = (
    # ------------------------------------------------------------------ torch quantizers
    M(
        id="torch-sign-zero-negative",
        category="torch quantizer",
        file="bitorch/quantizations/sign.py",
        original="    return step_values(x, 1.0)",
        replacement="    return step_values(x, -1.0)",
        description="sign takes steheaviside's convention at 0: sign(0) = sign(-0.0) = -1 "
        "(`x > 0` instead of `x >= 0`)",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-sign-single-scaling",
        category="torch quantizer",
        file="bitorch/quantizations/sign.py",
        original="    y.mul_(s).add_(zero)",
        replacement="    y.add_(zero)",
        description="sign's comparison-free step scales by 2**(maxexp-1) once, not twice: "
        "subnormal inputs do not reach +-1",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-approxsign-half-precision-grad",
        category="torch quantizer",
        file="bitorch/quantizations/approx_sign.py",
        original="        xf, fresh = to_compute(x)",
        replacement="        xf, fresh = x, False",
        description="approxsign gradient 2 - 2|x| computed in float16/bfloat16, not float32",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-approxsign-no-clamp",
        category="torch quantizer",
        file="bitorch/quantizations/approx_sign.py",
        original="        factor.clamp_max_(1).mul_(-2).add_(2)",
        replacement="        factor.mul_(-2).add_(2)",
        description="approxsign without min(|x|, 1): |x| > 1 gets the negative gradient "
        "2 - 2|x| instead of 0",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-approxsign-clamp-after",
        category="torch quantizer",
        file="bitorch/quantizations/approx_sign.py",
        original="        factor.clamp_max_(1).mul_(-2).add_(2)",
        replacement="        factor.mul_(-2).add_(2).clamp_min_(0)",
        description="approxsign clamps the factor at 0 afterwards instead of |x| at 1 before",
        tests=T_TORCH_Q,
        equivalent="for |x| <= 1 both compute 2 - 2|x| with the same roundings; for |x| > 1 "
        "(inf included) 2 - 2|x| is exactly negative (doubling and Sterbenz subtraction "
        "are exact), so clamp_min gives +0 where the original gives 2 - 2*1 = +0; NaN "
        "passes through both clamps",
    ),
    M(
        id="torch-swishsign-tanh-full",
        category="torch quantizer",
        file="bitorch/quantizations/swish_sign.py",
        original="        u = bx / 2\n",
        replacement="        u = bx.clone()\n",
        description="swishsign gradient uses tanh(beta*x) instead of tanh(beta*x / 2)",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-swishsign-inplace-alias",
        category="torch quantizer",
        file="bitorch/quantizations/swish_sign.py",
        original="        u = bx / 2\n",
        replacement="        u = bx.div_(2)\n",
        description="swishsign in-place division: u aliases bx, so cosh gets tanh-scaled values",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-swishsign-overflow-nan",
        category="torch quantizer",
        file="bitorch/quantizations/swish_sign.py",
        original="        if bound > 1000:\n            u.clamp_max_(bound)\n",
        replacement="",
        description="swishsign overflow guard dropped: x = +-inf gives -inf/inf = NaN instead "
        "of the limit 0",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-steheaviside-zero-positive",
        category="torch quantizer",
        file="bitorch/quantizations/ste_heaviside.py",
        original="        return step_values(input_tensor, -1.0)",
        replacement="        return step_values(input_tensor, 1.0)",
        description="steheaviside copies sign's convention: 0 gives +1 instead of -1",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-steheaviside-mask-strict",
        category="torch quantizer",
        file="bitorch/quantizations/ste_heaviside.py",
        original="    factor.mul_(-k).add_(1 + k)",
        replacement="    factor.mul_(-k).add_(k)",
        description="steheaviside mask off by one step: |x| = 1 (and just below) cancelled, "
        "as `|x| < 1` instead of `|x| <= 1`",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-steheaviside-bool-residual",
        category="torch quantizer",
        file="bitorch/quantizations/ste_heaviside.py",
        original="CODE_DTYPE = torch.float8_e5m2",
        replacement="CODE_DTYPE = torch.bool",
        description="steheaviside saves a bool mask: NaN becomes True, so a NaN input gets "
        "the gradient g instead of NaN",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-inputdorefa-round-half-up",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        q.mul_(n).round_().div_(n)",
        replacement="        q.mul_(n).add_(0.5).floor_().div_(n)",
        description="inputdorefa rounds half up (floor(v + 0.5)) instead of half to even",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-inputdorefa-clip-0999",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        q = torch.clamp(xf, 0, 1)",
        replacement="        q = torch.clamp(xf, 0, 0.999)",
        description="inputdorefa clips to [0, 0.999] (an 'open interval' habit) instead of [0, 1]",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-inputdorefa-n-pow2",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original='        n = 2 ** check_bits(bits, "inputdorefa") - 1',
        replacement='        n = 2 ** check_bits(bits, "inputdorefa")',
        description="inputdorefa n = 2**bits levels instead of 2**bits - 1",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-inputdorefa-masked-ste",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        return q.to(input_tensor.dtype)\n",
        replacement=(
            "        return q.to(input_tensor.dtype)\n"
            "\n"
            "    @staticmethod\n"
            "    def setup_context(ctx, inputs, output):\n"
            "        ctx.save_for_backward(inputs[0])\n"
            "\n"
            "    @staticmethod\n"
            "    def backward(ctx, output_gradient):\n"
            "        (x,) = ctx.saved_tensors\n"
            "        inside = (x >= 0) & (x <= 1)\n"
            "        return torch.where(inside, output_gradient, 0.0), None\n"
        ),
        description="inputdorefa STE gradient masked to 0 <= x <= 1 (a clipped STE) instead "
        "of passing everywhere",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-weightdorefa-max-without-abs",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        m = torch.maximum(highest, -lowest)",
        replacement="        m = highest",
        description="weightdorefa m = max(t) instead of max|t|",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-weightdorefa-max-of-x",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        t.tanh_()\n        lowest, highest = torch.aminmax(t)\n",
        replacement="        lowest, highest = torch.aminmax(t)\n        t.tanh_()\n",
        description="weightdorefa scales by max|x| instead of max|tanh x| (the maximum taken "
        "before tanh)",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-weightdorefa-no-subnormal-flush",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original=(
            "        t = F.hardshrink(xf, largest_subnormal)  # subnormals (and -0.0) to +0\n"
            "        t.tanh_()\n"
        ),
        replacement="        t = torch.tanh(xf)\n",
        description="weightdorefa keeps subnormal tanh values (XLA on CPU flushes them)",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-weightdorefa-divide-by-m",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="torch.where(m == 0, 1.0, 2 * m)",
        replacement="torch.where(m == 0, 1.0, m)",
        description="weightdorefa t / m instead of t / (2m)",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-weightdorefa-grad-through-tanh",
        category="torch quantizer",
        file="bitorch/quantizations/dorefa.py",
        original="        return t.to(input_tensor.dtype)\n",
        replacement=(
            "        return t.to(input_tensor.dtype)\n"
            "\n"
            "    @staticmethod\n"
            "    def setup_context(ctx, inputs, output):\n"
            "        ctx.save_for_backward(inputs[0])\n"
            "\n"
            "    @staticmethod\n"
            "    def backward(ctx, output_gradient):\n"
            "        (x,) = ctx.saved_tensors\n"
            "        return output_gradient * (1 - torch.tanh(x) ** 2), None\n"
        ),
        description="weightdorefa gradient taken through tanh (1 - tanh(x)^2) instead of "
        "the plain STE",
        tests=T_TORCH_Q,
    ),
    M(
        id="torch-ste-returns-ones",
        category="torch quantizer",
        file="bitorch/quantizations/base.py",
        original="        return (output_gradient, *([None] * (len(ctx.needs_input_grad) - 1)))",
        replacement=(
            "        return (torch.ones_like(output_gradient), "
            "*([None] * (len(ctx.needs_input_grad) - 1)))"
        ),
        description="STE returns dq/dx = 1 itself instead of passing the cotangent through",
        tests=T_TORCH_Q,
    ),
    # -------------------------------------------------------------------- JAX quantizers
    M(
        id="jax-sign-float-compare",
        category="jax quantizer",
        file="bitorch_jax/quantizations/sign.py",
        original="jnp.where(negative_nonzero(x), -one, one)",
        replacement="jnp.where(x < 0, -one, one)",
        description="sign via the float comparison `x < 0`: XLA on CPU takes negative "
        "subnormals as 0, so they give +1",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-sign-nan-dropped",
        category="jax quantizer",
        file="bitorch_jax/quantizations/sign.py",
        original="    return jnp.where(jnp.isnan(x), x, jnp.where(negative_nonzero(x), -one, one))",
        replacement="    return jnp.where(negative_nonzero(x), -one, one)",
        description="sign without the NaN case: NaN gives +-1 instead of NaN",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-sign-negative-zero",
        category="jax quantizer",
        file="bitorch_jax/quantizations/base.py",
        original="    return bits > jnp.asarray(1 << (8 * width - 1), bits.dtype)",
        replacement="    return bits >= jnp.asarray(1 << (8 * width - 1), bits.dtype)",
        description="sign-bit test counts -0.0 as negative: sign(-0.0) = -1",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-approxsign-half-precision-grad",
        category="jax quantizer",
        file="bitorch_jax/quantizations/approx_sign.py",
        original="    ct = compute_dtype(x.dtype)",
        replacement="    ct = x.dtype",
        description="approxsign gradient computed in float16/bfloat16, not float32",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-approxsign-nan-grad-zero",
        category="jax quantizer",
        file="bitorch_jax/quantizations/approx_sign.py",
        original="factor = 2 - 2 * jnp.minimum(jnp.abs(x.astype(ct)), 1)",
        replacement="factor = 2 - 2 * jnp.fmin(jnp.abs(x.astype(ct)), 1)",
        description="approxsign with jnp.fmin (NaN-ignoring) instead of jnp.minimum: a NaN "
        "input gets gradient 0",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-approxsign-where-mask",
        category="jax quantizer",
        file="bitorch_jax/quantizations/approx_sign.py",
        original="    grad = g.astype(ct) * factor\n",
        replacement="    grad = jnp.where(factor == 0, jnp.zeros((), ct), g.astype(ct) * factor)\n",
        description="approxsign masks instead of multiplying: past |x| = 1 the gradient is "
        "0 even for an infinite cotangent, where bitorch gives g * 0 = NaN",
        tests=(*T_JAX_Q, "parity_tests/test_nonfinite_cotangent.py"),
        command_blind="the command's cotangents are finite (an infinite one would make most "
        "gradients non-finite); parity_tests/test_nonfinite_cotangent.py covers the rule",
    ),
    M(
        id="jax-swishsign-beta-dropped",
        category="jax quantizer",
        file="bitorch_jax/quantizations/swish_sign.py",
        original="    factor = (2 * beta) * e * (2 * d - a * (1 - e)) / (d * d * d)",
        replacement="    factor = 2 * e * (2 * d - a * (1 - e)) / (d * d * d)",
        description="swishsign gradient without its leading factor beta",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-swishsign-beta-squared",
        category="jax quantizer",
        file="bitorch_jax/quantizations/swish_sign.py",
        original="    bx = beta * xf",
        replacement="    bx = beta * beta * xf",
        description="swishsign scales x by beta twice (beta^2 * x)",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-swishsign-overflow-nan",
        category="jax quantizer",
        file="bitorch_jax/quantizations/swish_sign.py",
        original="    grad = jnp.where(jnp.isinf(bx), jnp.zeros((), ct), g.astype(ct) * factor)",
        replacement="    grad = g.astype(ct) * factor",
        description="swishsign limit dropped: x = +-inf gives 0 * inf = NaN instead of 0",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-steheaviside-nan-grad-dropped",
        category="jax quantizer",
        file="bitorch_jax/quantizations/ste_heaviside.py",
        original="nan_or_zero = jnp.where(code == _NAN, jnp.full((), jnp.nan, g.dtype), "
        "jnp.zeros((), g.dtype))",
        replacement="nan_or_zero = jnp.zeros((), g.dtype)",
        description="steheaviside: NaN input gets gradient 0 (the mask hides the NaN)",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-steheaviside-float-compare",
        category="jax quantizer",
        file="bitorch_jax/quantizations/ste_heaviside.py",
        original="jnp.where(positive_nonzero(x), one, -one)",
        replacement="jnp.where(x > 0, one, -one)",
        description="steheaviside via the float comparison `x > 0`: XLA on CPU takes "
        "positive subnormals as 0, so they give -1",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-inputdorefa-reciprocal-division",
        category="jax quantizer",
        file="bitorch_jax/quantizations/dorefa.py",
        original="    return true_divide(jnp.round(jnp.clip(xf, 0, 1) * n), n).astype(x.dtype)",
        replacement="    return (jnp.round(jnp.clip(xf, 0, 1) * n) / n).astype(x.dtype)",
        description="inputdorefa plain `/ n`: XLA turns division by a constant into a "
        "multiplication by 1/n, one ulp off some levels (float32 14/15)",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-weightdorefa-float-max-drops-nan",
        category="jax quantizer",
        file="bitorch_jax/quantizations/dorefa.py",
        original="    m = _max_abs(t)",
        replacement="    m = jnp.max(jnp.abs(t))",
        description="weightdorefa plain float max-reduction: XLA on CPU drops NaN from "
        "reductions of >= 4096 elements, so one NaN no longer makes the output NaN",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-weightdorefa-zero-guard-dropped",
        category="jax quantizer",
        file="bitorch_jax/quantizations/dorefa.py",
        original="true_divide(t, jnp.where(m == 0, jnp.ones((), t.dtype), 2 * m))",
        replacement="true_divide(t, 2 * m)",
        description="weightdorefa without the m == 0 rule: an all-zero weight gives 0/0 = NaN",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-weightdorefa-no-upcast",
        category="jax quantizer",
        file="bitorch_jax/quantizations/dorefa.py",
        original="    xf = x.astype(compute_dtype(x.dtype))\n    t = _flushed_tanh(xf)",
        replacement="    xf = x\n    t = _flushed_tanh(xf)",
        description="weightdorefa: float16/bfloat16 not upcast, tanh and scaling in half precision",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-identity-float32-copy",
        category="jax quantizer",
        file="bitorch_jax/quantizations/identity.py",
        original="_identity = straight_through(lambda x: x)",
        replacement='_identity = straight_through(lambda x: x.astype("float32"))',
        description="identity copies through float32: a dtype change",
        tests=T_JAX_Q,
    ),
    M(
        id="jax-ste-returns-ones",
        category="jax quantizer",
        file="bitorch_jax/quantizations/base.py",
        original="        return (g, *res[1:])",
        replacement="        return (jnp.ones_like(g), *res[1:])",
        description="straight_through returns dq/dx = 1 itself instead of the cotangent",
        tests=T_JAX_Q,
    ),
    # ---------------------------------------------------------------------- torch layers
    M(
        id="torch-gc-inclusive",
        category="torch layer",
        file="bitorch/layers/qactivation.py",
        original="        ctx.save_for_backward(x.abs() > threshold)",
        replacement="        ctx.save_for_backward(x.abs() >= threshold)",
        description="gradient cancellation `>=` instead of `>`: |x| == threshold is cancelled",
        tests=T_LAYERS,
    ),
    M(
        id="torch-gc-zero-cancels-all",
        category="torch layer",
        file="bitorch/layers/qactivation.py",
        original="    if threshold == 0:\n        return x\n    return GradientCancellation.apply(",
        replacement="    return GradientCancellation.apply(",
        description="threshold 0 not special-cased: it cancels every gradient where x != 0 "
        "instead of turning cancellation off",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qlinear-no-gradient-cancellation",
        category="torch layer",
        file="bitorch/layers/qlinear.py",
        original="        x = self.activation(x)\n",
        replacement="        x = self.activation.activation_function(x)\n",
        description="QLinear calls the input quantizer directly, skipping its activation's "
        "gradient cancellation",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-zero-padding",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original=(
            "        if any(self._pad):\n"
            '            x = F.pad(x, self._pad, mode="constant", value=self.pad_value)\n'
            "        weight = self.weight_quantization(self.weight)\n"
            "        y = self._conv(x, weight, None, self.stride, 0, self.dilation, self.groups)"
        ),
        replacement=(
            "        weight = self.weight_quantization(self.weight)\n"
            "        y = self._conv(x, weight, None, self.stride, self.padding, self.dilation, "
            "self.groups)"
        ),
        description="QConv lets F.convNd pad (with 0) instead of padding with pad_value",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-pad-before-quantize",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original="        return self._pad_and_convolve(self.activation(input_tensor))",
        replacement=(
            "        x = input_tensor\n"
            "        if any(self._pad):\n"
            '            x = F.pad(x, self._pad, mode="constant", value=self.pad_value)\n'
            "        x = self.activation(x)\n"
            "        weight = self.weight_quantization(self.weight)\n"
            "        y = self._conv(x, weight, None, self.stride, 0, self.dilation, self.groups)\n"
            "        if self.bias is not None:\n"
            "            y = y + self.bias.view(-1, *([1] * len(self.kernel_size)))\n"
            "        return y"
        ),
        description="QConv pads before quantizing: the padding is quantized too "
        "(sign(0) = +1 for pad_value 0)",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-bias-twice",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original="        y = self._conv(x, weight, None, self.stride, 0,",
        replacement="        y = self._conv(x, weight, self.bias, self.stride, 0,",
        description="QConv adds the bias twice (in F.convNd and again after it)",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-dilation-ignored",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original="self.stride, 0, self.dilation, self.groups)",
        replacement="self.stride, 0, 1, self.groups)",
        description="QConv ignores dilation in the convolution",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-pad-dim-order",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original="        self._pad = tuple(p for pair in reversed(pads) for p in pair)",
        replacement="        self._pad = tuple(p for pair in pads for p in pair)",
        description="F.pad's last-dimension-first order missed: per-dimension paddings "
        "applied to the wrong spatial axes",
        tests=T_LAYERS,
    ),
    M(
        id="torch-qconv-same-odd-before",
        category="torch layer",
        file="bitorch/layers/qconv.py",
        original="        self._pad = tuple(p for pair in reversed(pads) for p in pair)",
        replacement=(
            "        self._pad = tuple(p for pair in reversed(pads) for p in reversed(pair))"
        ),
        description="(before, after) swapped for F.pad: 'same' with an even kernel puts the "
        "odd element before instead of after",
        tests=T_LAYERS,
    ),
    # ------------------------------------------------------------------------ JAX layers
    M(
        id="jax-gc-inclusive",
        category="jax layer",
        file="bitorch_jax/layers/qactivation.py",
        original="    return x, jnp.abs(x) > jnp.asarray(threshold, x.dtype)",
        replacement="    return x, jnp.abs(x) >= jnp.asarray(threshold, x.dtype)",
        description="gradient cancellation `>=` instead of `>`: |x| == threshold is cancelled",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-gc-zero-cancels-all",
        category="jax layer",
        file="bitorch_jax/layers/qactivation.py",
        original="    if threshold == 0:\n        return x\n    return _gradient_cancellation(",
        replacement="    return _gradient_cancellation(",
        description="threshold 0 not special-cased: it cancels every gradient where x != 0",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-gc-weak-threshold",
        category="jax layer",
        file="bitorch_jax/layers/qactivation.py",
        original="jnp.abs(x) > jnp.asarray(threshold, x.dtype)",
        replacement="jnp.abs(x) > threshold",
        description="threshold compared as a Python scalar instead of cast to x's dtype",
        tests=T_JAX_LAYERS,
        equivalent="JAX's weak typing converts the scalar to x's dtype before comparing, "
        "which is exactly what jnp.asarray(threshold, x.dtype) does (half precision "
        "included)",
    ),
    M(
        id="jax-gc-after-quantize",
        category="jax layer",
        file="bitorch_jax/layers/qactivation.py",
        original="    return quantization(gradient_cancellation(x, threshold))",
        replacement="    return gradient_cancellation(quantization(x), threshold)",
        description="cancellation on the quantized value |q(x)| = 1: nothing is cancelled",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qlinear-bias-dropped",
        category="jax layer",
        file="bitorch_jax/layers/qlinear.py",
        original="    if bias is not None:\n        y = y + bias\n    return y\n",
        replacement="    return y\n",
        description="q_linear never adds its bias",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qlinear-weight-not-quantized",
        category="jax layer",
        file="bitorch_jax/layers/qlinear.py",
        original="    wq = weight_quantization(kernel)\n",
        replacement="    wq = kernel\n",
        description="q_linear multiplies by the full-precision kernel",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-zero-padding",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="jnp.pad(xq, ((0, 0), *ring, (0, 0)), constant_values=pad_value)",
        replacement="jnp.pad(xq, ((0, 0), *ring, (0, 0)))",
        description="q_conv pads with jnp.pad's default 0 instead of pad_value",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-pad-before-quantize",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original=("        xq = jnp.pad(xq, ((0, 0), *ring, (0, 0)), constant_values=pad_value)\n"),
        replacement=(
            "        xq = jnp.pad(x, ((0, 0), *ring, (0, 0)), constant_values=pad_value)\n"
            "        xq = q_activation(xq, input_quantization, threshold)\n"
        ),
        description="q_conv pads before quantizing: the padding is quantized too",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-same-odd-before",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="jnp.pad(xq, ((0, 0), *ring, (0, 0)), constant_values=pad_value)",
        replacement=(
            "jnp.pad(xq, ((0, 0), *[(hi, lo) for lo, hi in ring], (0, 0)), "
            "constant_values=pad_value)"
        ),
        description="(before, after) pairs read as (after, before): 'same' with an even "
        "kernel puts the odd element first",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-dilation-ignored",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="        rhs_dilation=dilation,\n",
        replacement="",
        description="q_conv does not pass kernel_dilation to the convolution",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-groups-ignored",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="        feature_group_count=feature_group_count,\n",
        replacement="",
        description="q_conv does not pass feature_group_count to the convolution",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-stride-ignored",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="        window_strides=strides,",
        replacement="        window_strides=(1,) * n,",
        description="q_conv ignores strides",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-qconv-kernel-io-swapped",
        category="jax layer",
        file="bitorch_jax/layers/qconv.py",
        original="        rhs_spec=(n + 1, n, *range(n)),",
        replacement="        rhs_spec=(n, n + 1, *range(n)),",
        description="kernel dimension numbers read as (*k, O, I) instead of (*k, I, O)",
        tests=T_JAX_LAYERS,
    ),
    M(
        id="jax-nnx-qconv-pad-value-default",
        category="jax layer",
        file="bitorch_jax/layers/nnx.py",
        original="            pad_value=self.pad_value,",
        replacement="            pad_value=-1.0,",
        description="NNX QConv forgets to forward pad_value (always the default -1)",
        tests=T_JAX_LAYERS,
    ),
    # ------------------------------------------------------------------------ conversion
    M(
        id="convert-kernel-spatial-reversed",
        category="conversion",
        file="bitorch_jax/convert.py",
        original="    return np.transpose(weight, (*range(2, n + 2), 1, 0))",
        replacement="    return np.transpose(weight, (*reversed(range(2, n + 2)), 1, 0))",
        description="OIHW -> WHIO: the kernel's spatial axes reversed",
        tests=T_CONVERT,
    ),
    M(
        id="convert-kernel-io-swapped",
        category="conversion",
        file="bitorch_jax/convert.py",
        original="    return np.transpose(weight, (*range(2, n + 2), 1, 0))",
        replacement="    return np.transpose(weight, (*range(2, n + 2), 0, 1))",
        description="OIHW -> HWOI: in and out channels swapped",
        tests=T_CONVERT,
    ),
    M(
        id="convert-linear-not-transposed",
        category="conversion",
        file="bitorch_jax/convert.py",
        original="  # Linear: (out, in) -> (in, out)\n        return weight.T\n",
        replacement="  # Linear: (out, in) -> (in, out)\n        return weight\n",
        description="Linear weight (out, in) used as the kernel without transposing",
        tests=T_CONVERT,
    ),
    M(
        id="convert-bias-dropped",
        category="conversion",
        file="bitorch_jax/convert.py",
        original=(
            '            elif leaf in ("bias", "scale"):'
            "  # scale: QLinear/QConv output_scale, (out,)\n"
            "                name = leaf\n"
        ),
        replacement=(
            '            elif leaf == "bias":\n'
            "                continue\n"
            '            elif leaf == "scale":\n'
            "                name = leaf\n"
        ),
        description="torch -> Flax conversion skips the bias",
        tests=T_CONVERT,
    ),
    M(
        id="convert-batchnorm-mean-var-swapped",
        category="conversion",
        file="bitorch_jax/convert.py",
        original='"running_mean": "mean", "running_var": "var"}',
        replacement='"running_mean": "var", "running_var": "mean"}',
        description="BatchNorm running mean and variance swapped (both directions)",
        tests=("tests/layers/test_convert.py",),
        command_blind="the parity command compares quantizers and quantized layers; "
        "BatchNorm conversion is exercised only by tests/layers/test_convert.py",
    ),
    M(
        id="convert-back-kernel-io-swapped",
        category="conversion",
        file="bitorch_jax/convert.py",
        original="    return np.transpose(kernel, (n + 1, n, *range(n)))",
        replacement="    return np.transpose(kernel, (n, n + 1, *range(n)))",
        description="Flax -> torch: HWIO -> IOHW, in and out channels swapped on the way back",
        tests=T_CONVERT,
    ),
    # ---------------------------------------------------------------------------- shared
    M(
        id="shared-same-odd-before",
        category="shared",
        file="bitorch_common/validation.py",
        original="        pads.append((total // 2, total - total // 2))",
        replacement="        pads.append((total - total // 2, total // 2))",
        description="padding='same' with an even kernel puts the odd element before "
        "(torch puts it after)",
        tests=T_LAYERS,
        command_blind=_SHARED_BLIND,
    ),
    M(
        id="shared-max-bits-off-by-one",
        category="shared",
        file="bitorch_common/validation.py",
        original="    if not 1 <= bits <= MAX_BITS:",
        replacement="    if not 1 <= bits < MAX_BITS:",
        description="bits range check off by one: bits=24 is refused",
        tests=(
            "tests/torch/test_registry_and_api.py",
            "tests/jax/test_quantizations.py",
        ),
    ),
)


def by_id() -> dict[str, Mutant]:
    """The catalogue keyed by id (ids are unique)."""
    table = {m.id: m for m in MUTANTS}
    if len(table) != len(MUTANTS):
        seen: set[str] = set()
        dup = sorted({m.id for m in MUTANTS if m.id in seen or seen.add(m.id)})  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate mutant ids: {dup}")
    return table
