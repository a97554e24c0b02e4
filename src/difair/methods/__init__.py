"""Open-set methods: one module per method (its options, head, loss, prediction and scores), registered by
``@register_method`` beside its class. Callers use the ``Method`` interface and ``build_method``; only this
package names a concrete method.
"""

from difair.methods.base import (
    METHODS,
    Method,
    build_method,
    check_method_name,
    method_names,
    options_section,
    register_method,
)

# One line per method: importing its module registers it (in this order: the order of METHODS).
# isort: off
from difair.methods.difair import DifairConfig, DifairMethod
from difair.methods.ce import CEConfig, CEMethod
from difair.methods.cac import CACConfig, CACMethod

# isort: on

__all__ = [
    "METHODS",
    "Method",
    "build_method",
    "check_method_name",
    "method_names",
    "options_section",
    "register_method",
    "DifairConfig",
    "DifairMethod",
    "CEConfig",
    "CEMethod",
    "CACConfig",
    "CACMethod",
]
