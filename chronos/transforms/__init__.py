"""The action library: 20 PTX transforms (18 exact, 2 within the spec tolerance) plus stop.

```python
from chronos.transforms import CATALOGUE, ACTION_NAMES, N_ACTIONS, STOP, apply_action, action_mask
res = apply_action(spec, ptx, action_id)   # TransformResult(ptx, changed, reason)
mask = action_mask(spec, ptx, applied)     # bool (21,)
```
See docs/transforms.md for the catalogue table.
"""

from .base import NotApplicable, Transform, TransformContext, TransformResult
from .catalogue import (
    ACTION_IDS,
    ACTION_NAMES,
    CATALOGUE,
    N_ACTIONS,
    STOP,
    action_id,
    action_mask,
    apply_action,
    apply_sequence,
    conflicts,
    transform_context,
)

__all__ = [
    "ACTION_IDS",
    "ACTION_NAMES",
    "CATALOGUE",
    "N_ACTIONS",
    "STOP",
    "NotApplicable",
    "Transform",
    "TransformContext",
    "TransformResult",
    "action_id",
    "action_mask",
    "apply_action",
    "apply_sequence",
    "conflicts",
    "transform_context",
]
