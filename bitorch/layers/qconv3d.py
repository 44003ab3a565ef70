"""The quantized 3-d convolution (bitorch 0.4.1's module ``bitorch.layers.qconv3d``).

The classes live in :mod:`bitorch.layers.qconv`; see there.
"""

from bitorch.layers.qconv import QConv3d, QConv3d_NoAct, QConv3dBase

__all__ = ["QConv3d", "QConv3dBase", "QConv3d_NoAct"]
