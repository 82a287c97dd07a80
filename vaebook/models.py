"""Convolutional autoencoder, VAE and the 'oracle' factor reader, for square RGB images.

All three share one encoder body: a stack of stride-2 convolutions, each halving the image side,
so a 64×64 image with ``channels=(32, 64, 128, 256)`` becomes a 256×4×4 feature map. The decoder
mirrors it with transposed convolutions. Sizes come from :class:`ModelConfig`, never from
constants in the code.

Shapes in comments: B batch, C channels, S image side, L latent size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

KINDS = ("ae", "vae", "oracle")


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "ae"                               # "ae", "vae" or "oracle"
    latent_dim: int = 128                          # size of the bottleneck (z or h)
    channels: tuple[int, ...] = (32, 64, 128, 256)  # conv widths; each layer halves the side
    image_size: int = 64                           # side of the square input image, in pixels
    in_channels: int = 3                           # RGB
    factor_levels: tuple[int, ...] = ()            # oracle only: 0 = continuous, K = K classes

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "factor_levels", tuple(self.factor_levels))
        if self.kind not in KINDS:
            raise ValueError(f"ModelConfig.kind={self.kind!r} is not one of {KINDS}")
        if self.latent_dim < 1:
            raise ValueError(f"ModelConfig.latent_dim must be >= 1, got {self.latent_dim}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"ModelConfig.channels must be positive widths, got {self.channels}")
        shrink = 2 ** len(self.channels)
        if self.image_size % shrink or self.image_size < shrink:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of 2**len(channels)={shrink}: "
                f"each of the {len(self.channels)} conv layers halves the image side")
        if self.kind == "oracle" and not self.factor_levels:
            raise ValueError("an oracle needs factor_levels (one entry per factor to predict)")

    @property
    def feature_side(self) -> int:
        """Side of the last feature map (4 for 64×64 images and 4 conv layers)."""
        return self.image_size // 2 ** len(self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)


def conv_encoder(cfg: ModelConfig) -> nn.Sequential:
    """(B, 3, S, S) -> (B, C_last * s * s): stride-2 convolutions, then flatten."""
    layers, c_in = [], cfg.in_channels
    for c_out in cfg.channels:
        layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                   nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        c_in = c_out
    return nn.Sequential(*layers, nn.Flatten())


def conv_decoder(cfg: ModelConfig) -> nn.Sequential:
    """(B, L) -> (B, 3, S, S) in [0, 1]: the encoder in reverse, ending in a sigmoid."""
    widths = cfg.channels[::-1]
    s = cfg.feature_side
    layers = [nn.Linear(cfg.latent_dim, widths[0] * s * s), nn.Unflatten(1, (widths[0], s, s))]
    for c_in, c_out in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                   nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
    layers += [nn.ConvTranspose2d(widths[-1], cfg.in_channels, kernel_size=4, stride=2, padding=1),
               nn.Sigmoid()]  # pixel intensities live in [0, 1]
    return nn.Sequential(*layers)


def flat_size(cfg: ModelConfig) -> int:
    return cfg.channels[-1] * cfg.feature_side ** 2


class AutoEncoder(nn.Module):
    """x̂ = g(f(x)): the encoder f squeezes an image into h, the decoder g rebuilds it."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = conv_encoder(config)
        self.to_latent = nn.Linear(flat_size(config), config.latent_dim)
        self.decoder = conv_decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> h (B, L)."""
        return self.to_latent(self.encoder(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L) -> x̂ (B, 3, S, S)."""
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class VAE(AutoEncoder):
    """The autoencoder with a second head: the encoder outputs
    Q(z|x) = N(mu, diag(exp(logvar)))."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.to_logvar = nn.Linear(flat_size(config), config.latent_dim)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): the randomness moves into eps, so the
        gradient flows to mu and logvar through ordinary arithmetic."""
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + std * eps

    def encode(self, x: torch.Tensor):
        """(B, 3, S, S) -> (z, mu, logvar), each (B, L); z is one sample of Q(z|x)."""
        features = self.encoder(x)
        mu, logvar = self.to_latent(features), self.to_logvar(features)
        return self.reparameterise(mu, logvar), mu, logvar

    def forward(self, x: torch.Tensor):
        """(B, 3, S, S) -> (x̂, mu, logvar)."""
        z, mu, logvar = self.encode(x)
        return self.decode(z), mu, logvar


class Oracle(nn.Module):
    """A CNN that reads the ground-truth factors off an image: a measuring instrument for the
    book (its features give a Fréchet distance; its predictions say which factors survive a
    reconstruction). Continuous factors get one output each, a K-way factor gets K logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = conv_encoder(config)
        self.to_features = nn.Sequential(nn.Linear(flat_size(config), config.latent_dim), nn.LeakyReLU(0.2))
        self.head = nn.Linear(config.latent_dim, sum(max(k, 1) for k in config.factor_levels))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, L) features, the space the Fréchet distance is measured in."""
        return self.to_features(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> raw outputs (B, sum of max(K, 1))."""
        return self.head(self.features(x))

    def split_outputs(self, out: torch.Tensor) -> list[torch.Tensor]:
        """Raw outputs -> one (B,) value or (B, K) logits per factor."""
        parts = torch.split(out, [max(k, 1) for k in self.config.factor_levels], dim=1)
        return [p[:, 0] if k == 0 else p for p, k in zip(parts, self.config.factor_levels)]

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, F) factor estimates: values for continuous factors, the most
        likely class for categorical ones."""
        return self.predict_from_features(self.features(x))

    @torch.no_grad()
    def predict_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """predict(x) from features(x) (B, L) already computed: (B, F)."""
        parts = self.split_outputs(self.head(features))
        cols = [p if k == 0 else p.argmax(1).float() for p, k in zip(parts, self.config.factor_levels)]
        return torch.stack(cols, dim=1)


MODEL_CLASSES = {"ae": AutoEncoder, "vae": VAE, "oracle": Oracle}


def build_model(config: ModelConfig, seed: int | None = 0) -> nn.Module:
    """A fresh model of config.kind; with a seed, its initial weights are reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return MODEL_CLASSES[config.kind](config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
