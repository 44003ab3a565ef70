"""bitorch 0.4.1's model zoo (``bitorch.models``): binary networks by name.

Every model is a :class:`Model` called ``(input_shape, num_classes=0, ...)`` with
``input_shape`` the NCHW input shape (batch included); its ``state_dict`` keys and
shapes are those of bitorch 0.4.1, so a 0.4.1 checkpoint loads with ``strict=True``.
Models are registered under ``name.lower()``; look-up is case-insensitive. 0.4.1's
DLRM, model hub, ``from_pretrained`` and runtime-mode ``convert`` are not included.

>>> model_from_name("lenet").__name__
'LeNet'
>>> "resnete18" in model_names()
True
"""

from __future__ import annotations

from bitorch.models.base import Model, NoArgparseArgsMixin
from bitorch_common.registry import Registry

_REGISTRY: Registry[type[Model]] = Registry(
    Model, kind="model", lower_case_keys=True, abstract_name=""
)


def model_from_name(name: str) -> type[Model]:
    """The model class registered under ``name`` (case-insensitive).

    ``ValueError`` naming the known models for an unknown name.
    """
    return _REGISTRY.lookup(name)


def model_names() -> list[str]:
    """The registered model names (lower case, sorted)."""
    return _REGISTRY.names()


def register_custom_model(custom_model: type[Model]) -> type[Model]:
    """Register a :class:`Model` subclass under ``custom_model.name.lower()``; returns
    the class, so it can be used as a decorator."""
    return _REGISTRY.register(custom_model)


# --- model families: one import block each, then its classes in _ZOO -------------------
# one block per family, in the order of _ZOO (not sorted)
# isort: off
# LeNet
from bitorch.models.lenet import LeNet  # noqa: E402

# ResNetE
from bitorch.models.resnet_e import ResnetE, ResnetE18, ResnetE34  # noqa: E402

# Resnet, QuickNet (helper B)
from bitorch.models.quicknet import QuickNet, QuickNetLarge, QuickNetSmall  # noqa: E402
from bitorch.models.resnet import (  # noqa: E402
    Resnet,
    Resnet18V1,
    Resnet18V2,
    Resnet34V1,
    Resnet34V2,
    Resnet50V1,
    Resnet50V2,
    Resnet152V1,
    Resnet152V2,
)

# DenseNet, MeliusNet (helper C); MeliusNet29 is not registered, as in 0.4.1
from bitorch.models.densenet import (  # noqa: E402
    DenseNet,
    DenseNet28,
    DenseNet37,
    DenseNet45,
    DenseNetFlex,
)
from bitorch.models.meliusnet import (  # noqa: E402
    MeliusNet,
    MeliusNet22,
    MeliusNet23,
    MeliusNet42,
    MeliusNet59,
    MeliusNetA,
    MeliusNetB,
    MeliusNetC,
    MeliusNetFlex,
)

# isort: on

_ZOO: tuple[type[Model], ...] = (
    LeNet,
    ResnetE,
    ResnetE18,
    ResnetE34,
    # Resnet, QuickNet (helper B)
    Resnet,
    Resnet18V1,
    Resnet34V1,
    Resnet50V1,
    Resnet152V1,
    Resnet18V2,
    Resnet34V2,
    Resnet50V2,
    Resnet152V2,
    QuickNet,
    QuickNetSmall,
    QuickNetLarge,
    # DenseNet, MeliusNet (helper C)
    DenseNet,
    DenseNet28,
    DenseNet37,
    DenseNet45,
    DenseNetFlex,
    MeliusNet,
    MeliusNet22,
    MeliusNet23,
    MeliusNet42,
    MeliusNet59,
    MeliusNetA,
    MeliusNetB,
    MeliusNetC,
    MeliusNetFlex,
)
# --- end of model families ---------------------------------------------------------

for _cls in _ZOO:
    _REGISTRY.register(_cls)
del _cls

__all__ = [
    "Model",
    "NoArgparseArgsMixin",
    "model_from_name",
    "model_names",
    "register_custom_model",
    *(cls.__name__ for cls in _ZOO),
]
