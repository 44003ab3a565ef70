"""bitorch_common: the framework-free core shared by ``bitorch`` and ``bitorch_jax``.

Nothing here imports torch or JAX (NumPy and ``ml_dtypes`` only), so both packages and
the parity suite use the same code for what must not differ between them:

* :mod:`~bitorch_common.validation`: argument checks, messages and exception types;
* :mod:`~bitorch_common.registry`: the registry of quantizers by name;
* :mod:`~bitorch_common.config`: the default hyperparameters (one instance per framework);
* :mod:`~bitorch_common.quantizers`: the quantizer table, one row per quantizer;
* :mod:`~bitorch_common.oracles`: the NumPy closed forms of every quantizer;
* :mod:`~bitorch_common.comparison`, :mod:`~bitorch_common.tolerances`,
  :mod:`~bitorch_common.inputs`: the comparison engine that the parity command and the
  frameworks' unit tests share, with every tolerance in one place.

>>> from bitorch_common.quantizers import row
>>> row("sign").oracle().forward(np.array([-0.0, 2.0], np.float32))
array([1., 1.], dtype=float32)
"""

import numpy as np  # noqa: F401  (used by the doctest above)
