"""Open models for scalecode: encoders and causal LMs, fine-tuned with Ray Train and DeepSpeed."""

__version__ = "0.2.0"
