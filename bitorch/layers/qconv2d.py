"""The quantized 2-d convolution (bitorch 0.4.1's module ``bitorch.layers.qconv2d``).

The classes live in :mod:`bitorch.layers.qconv`; see there.
"""

from bitorch.layers.qconv import QConv2d, QConv2d_NoAct, QConv2dBase

__all__ = ["QConv2d", "QConv2dBase", "QConv2d_NoAct"]
