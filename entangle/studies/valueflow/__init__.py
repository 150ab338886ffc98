"""Value steering at calibrated intensity (VALUEFLOW, issue 11): value directions, two steering arms, an
anchor-based intensity evaluator, asymmetry, leakage and composition laws. Entry point: `run(ctx, Config())`."""

from entangle.studies.valueflow.study import NAME, Config, run

__all__ = ["NAME", "Config", "run"]
