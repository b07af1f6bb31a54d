"""``python -m train average OUT WEIGHTS WEIGHTS ...``: the uniform average of weights files of one run.

Averaging the weights a run exported along its way (``export_every``) is stochastic weight averaging
(Izmailov et al. 2018): when late exports of a run at a constant learning rate scatter around one minimum,
their mean lies nearer its centre than any one of them and carries less of the last batches' noise.
Whether it does better is for ``train eval`` to say: when the exports drift rather than scatter, the
mean can be worse than its last member (bench/results/eval_swa_not_shipped).
The files must share one configuration and the same tensors (exports of one run, or of runs from one
``--init`` file). BatchNorm's running statistics are averaged like the weights, which is close to
re-estimating them when the files are near each other.

``--styles-from BASE`` gives the average BASE's named styles (and their metadata) in place of the files'
own, for files whose style decoder and encoder are still BASE's, which is checked tensor by tensor: the
exports of a run that trained only the colour decoder from BASE.
``--chroma-confidence X`` sets the decoding's confidence-aware chroma shrinking in the file's config
(choose it on training photos: ``train eval --split train --chroma-confidence ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gan_core.model import DualGAN
from gan_core.weights import STYLE_PREFIX, load_weights, save_weights

from .eval_setup import with_decoding
from .warm_start import STYLED_PARTS


def average_weights(files: list[Path], out: Path, styles_from: Path | None = None,
                    chroma_confidence: float | None = None) -> dict:
    """Write the uniform average of ``files`` to ``out`` (fp16); returns its training summary.

    ``styles_from``: a weights file whose named styles the average takes (its style decoder and encoder
    must equal the average's); ``chroma_confidence``: the config's value to write instead of the files'."""
    if out.suffix.lower() != ".safetensors":
        raise ValueError(f"{out}: the averaged file must be a .safetensors file")
    if len(files) < 2:
        raise ValueError("give at least two weights files to average")
    model, first = load_weights(files[0])
    total = {k: v.double() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    steps = [first.training.get("steps")]
    for path in files[1:]:
        other, info = load_weights(path)
        if info.config.to_json() != first.config.to_json():
            raise ValueError(f"{path}: its model configuration differs from {files[0].name}'s; average files of one run")
        if sorted(info.styles) != sorted(first.styles):
            raise ValueError(f"{path}: its named styles ({', '.join(sorted(info.styles)) or 'none'}) differ from "
                             f"{files[0].name}'s ({', '.join(sorted(first.styles)) or 'none'})")
        for k, v in other.state_dict().items():
            if k in total:
                total[k] += v.double()
        steps.append(info.training.get("steps"))
    state = model.state_dict()
    state.update({k: (v / len(files)).to(state[k].dtype) for k, v in total.items()})
    model.load_state_dict(state, strict=True)
    training = {**first.training, "averaged_from": [{"file": p.name, "steps": s} for p, s in zip(files, steps)]}
    styles = first.styles
    if styles_from is not None:
        model, styles = with_styles_of(model, styles_from)
        training["styles_from"] = styles_from.name
    with_decoding(model, chroma_confidence=chroma_confidence)  # the config checks the range
    save_weights(out, model.eval(), styles=styles, training=training, licence=first.licence, dtype=torch.float16)
    return training


def with_styles_of(model: DualGAN, base: Path) -> tuple[DualGAN, dict]:
    """``model`` rebuilt with the named styles of the weights file ``base`` (and their metadata)."""
    base_model, base_info = load_weights(base)
    base_state, own = base_model.state_dict(), model.state_dict()
    for name, tensor in own.items():
        if name.startswith(STYLED_PARTS) and not name.endswith("num_batches_tracked"):
            # What the styles adapt must be the base file's. Compared as stored (fp16): the frozen tensors went through the exports' fp16 rounding.
            if name not in base_state or not torch.equal(base_state[name].half(), tensor.half()):
                raise ValueError(f"{base.name}: its tensor {name!r} differs from the averaged files', so its named styles "
                                 "do not fit them; give the file the run started from (--init)")
    rebuilt = DualGAN(model.config, tuple(base_info.styles))
    state = rebuilt.state_dict()
    state.update({k: v for k, v in own.items() if k in state})
    state.update({k: base_state[k] for k in state if k.startswith(STYLE_PREFIX)})
    rebuilt.load_state_dict(state, strict=True)
    return rebuilt, base_info.styles


def register(subparsers) -> None:
    p = subparsers.add_parser("average", help="the uniform average of weights files exported along one run (weight averaging)")
    p.add_argument("out", type=Path, help="the weights file to write (.safetensors)")
    p.add_argument("files", type=Path, nargs="+", help="two or more weights files of one configuration, e.g. RUN_DIR/exports/*")
    p.add_argument("--styles-from", type=Path, metavar="BASE",
                   help="take the named styles of this weights file (the --init file of a run that trained only the colour decoder)")
    p.add_argument("--chroma-confidence", type=float, metavar="X",
                   help="write this confidence-aware chroma shrinking (0..1) into the file's config")

    def run_average(args) -> str:
        training = average_weights(args.files, args.out, args.styles_from, args.chroma_confidence)
        return f"wrote {args.out}: the mean of {len(args.files)} files " + json.dumps([a["steps"] for a in training["averaged_from"]])

    p.set_defaults(func=run_average)
