"""Social value orientation (HVAE): the SVO slider measure (`measure`), orientations induced by prompt and by
steering, value rationality. See docs/svo.md."""

from entangle.studies.svo.study import Condition, Config, run

__all__ = ["Condition", "Config", "run"]
