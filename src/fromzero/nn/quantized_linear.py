"""A linear layer with integer weights: dynamic int8, weight-only int8 and weight-only int4.

Symmetric quantization (zero point 0), per output channel or per group of
``group_size`` input columns:

    s   = max |w| / q_max          over one output row (per channel) or one (row, group)
    w_q = clamp(round(w / s), -q_max, q_max)        q_max = 127 (int8), 7 (int4)
    w  ~= s * w_q                                   (``dequantize``)

A row (or group) that is all zero gets s = 1, so it quantizes to zeros without dividing by zero.

What is saved (plain tensors, safetensors-compatible, keys ``<layer>.weight_q``, ``.scales``, ``.bias``):

    weight_q   int8  (out, in)           int8 modes
               uint8 (out, ceil(in/2))   int4: two values per byte, column 2j in the low nibble and 2j+1 in
                                         the high nibble, each stored as w_q + 8 (0..15); an odd last column
                                         is padded with a zero value
    scales     float (out,) per channel, or (out, in / group_size) per group
    bias       float (out,) when the layer has one

How each mode computes ``y = x W^T + b``:

- ``dynamic-int8``: activations are quantized per token at run time and the matmul is int8 x int8 -> int32
  (fbgemm / oneDNN ``quantized::linear_dynamic``, the CPU engine of ``torch.backends.quantized``). That
  kernel quantizes its whole input with one (asymmetric, uint8) scale, so each token (row) is first divided
  by its own max |x| and the output multiplied back, which makes the activation scale per token:
  ``y_t = r_t * ((x_t / r_t) W^T) + b``. ``reduce_range=True`` (7-bit activations) because AVX2 kernels
  add u8 x s8 pairs in int16 and would saturate otherwise. The kernel's packed weight is built from
  ``weight_q`` and ``scales`` on first use (never saved) and rebuilt whenever they change (load, ``.to``).
  Off the CPU, on non-float32 inputs or without the quantized engine, the same per-token quantization is
  simulated in floating point.
- ``weight-int8`` / ``weight-int4``: weight-only; the weight is dequantized on the fly and the matmul runs
  in the activations' float type (the saved file and resident weights shrink; compute stays float).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.errors import ConfigError

MODES: tuple[str, ...] = ("dynamic-int8", "weight-int8", "weight-int4")
Q_MAX = {"dynamic-int8": 127, "weight-int8": 127, "weight-int4": 7}


def check_mode(mode: str, in_features: int, group_size: int | None, where: str = "") -> None:
    """A one-line ConfigError unless ``mode`` is known and ``group_size`` fits ``in_features``."""
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown quantization mode {mode!r}; choose one of {', '.join(MODES)}")
    if group_size is None:
        return
    if mode == "dynamic-int8":
        raise ConfigError("--group-size: dynamic-int8 uses one scale per output channel; drop --group-size "
                          "(group-wise scales are for weight-int8 / weight-int4)")
    if group_size < 1 or in_features % group_size:
        raise ConfigError(f"--group-size {group_size} does not divide the {in_features} input features of "
                          f"{where or 'a linear layer'}; choose a divisor of {in_features}")


def symmetric_scales(weight: torch.Tensor, q_max: int, group_size: int | None) -> torch.Tensor:
    """weight (out, in) -> scales (out,) or (out, in / group_size): max |w| / q_max, 1 where all zero."""
    out_features, in_features = weight.shape
    w = weight if group_size is None else weight.reshape(out_features, in_features // group_size, group_size)
    amax = w.abs().amax(dim=-1)
    return torch.where(amax > 0, amax / q_max, torch.ones_like(amax))


def expand_scales(scales: torch.Tensor, in_features: int) -> torch.Tensor:
    """scales (out,) or (out, G) -> (out, in): the scale of every weight."""
    if scales.dim() == 1:
        return scales[:, None].expand(-1, in_features)
    return scales.repeat_interleave(in_features // scales.shape[1], dim=1)


def quantize_symmetric(weight: torch.Tensor, scales: torch.Tensor, q_max: int) -> torch.Tensor:
    """weight (out, in), scales (out,) or (out, G) -> int8 (out, in) = clamp(round(w / s), -q_max, q_max)."""
    s = expand_scales(scales, weight.shape[1]).to(weight.dtype)
    return torch.clamp(torch.round(weight / s), -q_max, q_max).to(torch.int8)


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """int (out, in) in [-8, 7] -> uint8 (out, ceil(in/2)): column 2j low nibble, 2j+1 high, each + 8."""
    if values.numel() and (values.min() < -8 or values.max() > 7):
        raise ValueError("int4 values must be in [-8, 7]")
    u = (values.to(torch.int16) + 8).to(torch.uint8)
    if u.shape[1] % 2:
        u = torch.cat([u, torch.full_like(u[:, :1], 8)], dim=1)  # pad with the value 0
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """uint8 (out, ceil(in/2)) -> int8 (out, in), the inverse of :func:`pack_int4`."""
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)[:, :in_features]


# fbgemm / oneDNN int8 kernels in this torch build (checked once: the check costs microseconds per call)
_INT8_KERNEL = hasattr(torch.ops.quantized, "linear_dynamic") and torch.backends.quantized.engine != "none"


class QuantizedLinear(nn.Module):
    """``y = x W^T + b`` with W stored as integers and scales (see the module docstring for the modes)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, mode: str, group_size: int | None,
                 weight_q: torch.Tensor, scales: torch.Tensor, bias_value: torch.Tensor | None) -> None:
        super().__init__()
        check_mode(mode, in_features, group_size)
        self.in_features, self.out_features = in_features, out_features
        self.mode, self.group_size = mode, group_size
        self.register_buffer("weight_q", weight_q)
        self.register_buffer("scales", scales)
        self.bias = nn.Parameter(bias_value, requires_grad=False) if bias else None
        self._packed: Any = None  # the kernel's packed weight (dynamic-int8), never saved
        self._packed_key: tuple | None = None

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: bool, mode: str,
              group_size: int | None) -> QuantizedLinear:
        """A layer of the right shapes and dtypes, zero-filled, for ``load_state_dict`` to fill."""
        check_mode(mode, in_features, group_size)
        if mode == "weight-int4":
            weight_q = torch.full((out_features, (in_features + 1) // 2), 0x88, dtype=torch.uint8)
        else:
            weight_q = torch.zeros(out_features, in_features, dtype=torch.int8)
        groups = () if group_size is None else (in_features // group_size,)
        scales = torch.ones(out_features, *groups)
        return cls(in_features, out_features, bias, mode, group_size, weight_q, scales,
                   torch.zeros(out_features) if bias else None)

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, mode: str, group_size: int | None, *,
                    weight_q: torch.Tensor | None = None, scales: torch.Tensor | None = None) -> QuantizedLinear:
        """Quantize ``linear`` round-to-nearest, or take already-chosen integers ``weight_q`` (int, (out, in),
        unpacked) with their ``scales`` (e.g. from GPTQ)."""
        check_mode(mode, linear.in_features, group_size)
        weight = linear.weight.detach()
        if scales is None:
            scales = symmetric_scales(weight.float(), Q_MAX[mode], group_size).to(weight.dtype)
        if weight_q is None:
            weight_q = quantize_symmetric(weight.float(), scales.float(), Q_MAX[mode])
        stored = pack_int4(weight_q) if mode == "weight-int4" else weight_q.to(torch.int8).clone()
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        layer = cls(linear.in_features, linear.out_features, bias is not None, mode, group_size, stored,
                    scales.detach().clone(), bias)
        return layer.to(weight.device)

    def int_weight(self) -> torch.Tensor:
        """The integer weights, unpacked: int8 (out, in)."""
        if self.mode == "weight-int4":
            return unpack_int4(self.weight_q, self.in_features)
        return self.weight_q

    def dequantize(self) -> torch.Tensor:
        """The float weight the integers stand for, s * w_q: (out, in) in the scales' dtype."""
        q = self.int_weight()
        if self.group_size is None:
            return q.to(self.scales.dtype) * self.scales[:, None]
        groups = q.view(self.out_features, -1, self.group_size).to(self.scales.dtype)  # (out, G, g)
        return (groups * self.scales[..., None]).view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        if self.mode != "dynamic-int8":
            return F.linear(x, self.dequantize().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        if _INT8_KERNEL and x.device.type == "cpu" and x.dtype == torch.float32:
            return self._int8_kernel(x)
        return self._int8_simulated(x)

    def _int8_kernel(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == self.in_features:  # one token: the kernel's per-tensor scale is already per token
            y = torch.ops.quantized.linear_dynamic(x.reshape(1, -1), self._packed_weight(), True)
            y = y.view(*x.shape[:-1], self.out_features)
        else:
            r = x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)  # (..., 1) per-token range
            y = torch.ops.quantized.linear_dynamic(x / r, self._packed_weight(), True).mul_(r)
        return y if self.bias is None else y.add_(self.bias)

    def _int8_simulated(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token symmetric int8 activations times the int8 weight, in floating point."""
        sx = x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127  # (..., 1)
        xq = torch.clamp(torch.round(x / sx), -127, 127)
        y = F.linear(xq, self.weight_q.to(x.dtype)) * (sx * self.scales.to(x.dtype))
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def _packed_weight(self) -> Any:
        """The kernel's packed weight (no bias: it is added after the per-token rescale), rebuilt when weight_q or
        scales change (in-place loads bump ``_version``, ``.to`` gives new storage)."""
        key = (self.weight_q.data_ptr(), self.weight_q._version, self.scales.data_ptr(), self.scales._version)
        if self._packed is None or key != self._packed_key:
            with warnings.catch_warnings():  # quantized tensor constructors warn they are deprecated
                warnings.simplefilter("ignore")
                zero = torch.zeros(self.out_features, dtype=torch.long)
                qweight = torch._make_per_channel_quantized_tensor(self.weight_q, self.scales.double(), zero, 0)
                self._packed = torch.ops.quantized.linear_prepack(qweight, None)
            self._packed_key = key
        return self._packed

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles drop the packed kernel weight (it is rebuilt on first use)."""
        return {**self.__dict__, "_packed": None, "_packed_key": None}

    def extra_repr(self) -> str:
        group = f"group_size={self.group_size}" if self.group_size else "per-channel"
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"mode={self.mode}, {group}")


def replace_module(model: nn.Module, dotted_name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``dotted_name`` (e.g. ``blocks.0.attn.qkv``) in ``model``; returns the module replaced."""
    parent_name, _, child = dotted_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = parent.get_submodule(child)
    setattr(parent, child, new)
    return old
