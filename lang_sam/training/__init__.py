"""Fine-tuning SAM's mask decoder with Lightning: data, losses, the module and the run."""
