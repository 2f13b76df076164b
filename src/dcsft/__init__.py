"""dcsft: difficulty-curated post-training (DC-SFT) of vision-language models."""

__version__ = "0.1.0"
