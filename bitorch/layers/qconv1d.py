"""The quantized 1-d convolution (bitorch 0.4.1's module ``bitorch.layers.qconv1d``).

The classes live in :mod:`bitorch.layers.qconv`; see there.
"""

from bitorch.layers.qconv import QConv1d, QConv1d_NoAct, QConv1dBase

__all__ = ["QConv1d", "QConv1dBase", "QConv1d_NoAct"]
