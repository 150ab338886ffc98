"""The entanglement study: capture -> probes -> EI vs norms -> ablation of the moral direction."""
