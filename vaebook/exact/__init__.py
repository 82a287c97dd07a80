"""Models small enough to solve exactly, for checking the networks' numbers against closed
forms: probabilistic PCA with its exact likelihood and posterior (``linear``, chapter 3) and the
linear β-VAE with its rate and distortion in closed form (``linear_vae``, chapter 6)."""
from .linear import LinearGaussian

__all__ = ["LinearGaussian"]
