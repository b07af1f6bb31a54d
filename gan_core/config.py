"""The architecture configuration: everything needed to rebuild the network from a weights file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class DualGANConfig:
    """Sizes of the shared encoder and the two decoders.

    The default is the shipped model: VGG16 widths (so ImageNet weights fit), a 22 x 22 ab grid.
    Tests use much narrower widths; every width is free except that ``vgg_widths`` must stay the
    VGG16 ones for pretrained encoder weights to load.
    """

    vgg_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    color_widths: tuple[int, int, int] = (256, 128, 64)  # decoder widths at 1/8, 1/4, 1/2 scale
    style_widths: tuple[int, int, int, int] = (256, 128, 64, 32)  # at 1/8, 1/4, 1/2, 1/1 scale
    palette_embed: int = 128
    ab_bins_per_axis: int = 22
    ab_range: float = 110.0
    annealed_temperature: float = 0.38
    # The encoder's features come from 0..255-scaled ImageNet weights and are O(100); the style
    # decoder has no normalisation layer, so it scales its input down to O(1) first.
    style_input_scale: float = 0.01
    # The optional fast style network (``python -m train distill``): a light VGG-shaped encoder to
    # relu4_1 and a narrow style decoder, distilled from the two above. Empty: the file has none.
    fast_encoder_widths: tuple[int, ...] = ()
    fast_decoder_widths: tuple[int, ...] = ()
    # Or the residual fast style network (``gan_core.residual_style``, ``python -m train distill --shape
    # residual``): widths at 1/1, 1/2 and 1/4 of the size and the number of residual blocks at 1/4.
    fast_residual_widths: tuple[int, ...] = ()
    fast_residual_blocks: int = 0
    # Guided colour (``gan_core.guidance``): the colour decoder also reads a hint / reference guidance map.
    guided: bool = False
    # Confidence-aware decoding: chroma shrinks by up to this share where the predicted distribution is
    # spread out (normalised entropy), so uncertain regions stay muted instead of turning into blotches.
    chroma_confidence: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vgg_widths", "color_widths", "style_widths", "fast_encoder_widths", "fast_decoder_widths",
                     "fast_residual_widths"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple) or not all(isinstance(w, int) and w > 0 for w in widths):
                raise ValueError(f"config field {name} must hold positive integers, got {widths!r}")
        if len(self.vgg_widths) != 4 or len(self.color_widths) != 3 or len(self.style_widths) != 4:
            raise ValueError("config widths have the wrong length (vgg 4, color 3, style 4)")
        if (len(self.fast_encoder_widths), len(self.fast_decoder_widths)) not in ((0, 0), (4, 4)):
            raise ValueError("fast_encoder_widths and fast_decoder_widths must both be empty or both hold 4 widths")
        if len(self.fast_residual_widths) not in (0, 3) or not isinstance(self.fast_residual_blocks, int) \
                or (self.fast_residual_blocks > 0) != bool(self.fast_residual_widths):
            raise ValueError("fast_residual_widths must be empty or hold 3 widths, with fast_residual_blocks "
                             "above 0 exactly when they are given")
        if self.fast_encoder_widths and self.fast_residual_widths:
            raise ValueError("a weights file holds one fast style network: give fast_encoder_widths or "
                             "fast_residual_widths, not both")
        if not isinstance(self.guided, bool):
            raise ValueError(f"config field guided must be true or false, got {self.guided!r}")
        if not 0.0 <= self.chroma_confidence <= 1.0:
            raise ValueError(f"chroma_confidence must be in [0, 1], got {self.chroma_confidence}")
        if not 0.0 < self.annealed_temperature <= 1.0:
            raise ValueError(f"annealed_temperature must be in (0, 1], got {self.annealed_temperature}")

    @property
    def has_fast_style(self) -> bool:
        return bool(self.fast_encoder_widths) or bool(self.fast_residual_widths)

    @property
    def fast_shape(self) -> str:
        """'vgg' (distilled VGG-shaped encoder and decoder), 'residual' (``gan_core.residual_style``) or ''."""
        return "vgg" if self.fast_encoder_widths else "residual" if self.fast_residual_widths else ""

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        # Fields at their 'absent' value are left out, so such files stay readable by older versions.
        if not self.fast_encoder_widths:
            del fields["fast_encoder_widths"], fields["fast_decoder_widths"]
        if not self.fast_residual_widths:
            del fields["fast_residual_widths"], fields["fast_residual_blocks"]
        if not self.guided:
            del fields["guided"]
        if not self.chroma_confidence:
            del fields["chroma_confidence"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DualGANConfig":
        """Parse a config; raises ValueError naming the field that is wrong or unknown."""
        return cls.with_fields(json.loads(text))

    @classmethod
    def with_fields(cls, fields: object, base: "DualGANConfig | None" = None, *,
                    source: str = "the architecture config") -> "DualGANConfig":
        """``base`` (default: the defaults) with ``fields`` (a JSON object) replaced; ValueError naming ``source``
        and the field that is wrong or unknown."""
        if not isinstance(fields, dict):
            raise ValueError(f"{source} is not a JSON object of config fields (got {fields!r})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{source} has unknown fields {unknown}; known fields: {', '.join(sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            return dataclasses.replace(base if base is not None else cls(), **values)
        except TypeError as exc:  # a field of the wrong type
            raise ValueError(f"{source} is invalid ({exc})") from None

def tiny_config() -> DualGANConfig:
    """A few-thousand-parameter model for tests and smoke runs."""
    return DualGANConfig(
        vgg_widths=(4, 8, 8, 8),
        color_widths=(8, 8, 8),
        style_widths=(8, 8, 8, 4),
        palette_embed=8,
        ab_bins_per_axis=8,
    )
