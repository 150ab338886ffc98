"""Social value orientation (HVAE): the SVO slider measure, orientations induced by prompt and by steering, value
rationality. See docs/svo.md."""

from entangle.studies.svo.measure import (
           category,
           ideal_patterns,
           load_items,
           null_patterns,
           svo_angle,
           value_rationality,
)
from entangle.studies.svo.study import Condition, Config, run

__all__ = ["Condition", "Config", "category", "ideal_patterns", "load_items", "null_patterns", "run", "svo_angle",
           "value_rationality"]
