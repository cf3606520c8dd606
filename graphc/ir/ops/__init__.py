"""Ops by family. Each op keeps its shape inference, numpy reference and gradient together."""
