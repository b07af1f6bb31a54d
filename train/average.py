"""``python -m train average OUT WEIGHTS WEIGHTS ...``: the uniform average of weights files of one run.

Averaging the weights a run exported along its way (``export_every``) is stochastic weight averaging
(Izmailov et al. 2018): when late exports of a run at a constant learning rate scatter around one minimum,
their mean lies nearer its centre than any one of them and carries less of the last batches' noise.
Whether it does better is for ``train eval`` to say: when the exports drift rather than scatter, the
mean can be worse than its last member (bench/results/eval_swa_not_shipped).
The files must share one configuration and the same tensors (exports of one run, or of runs from one
``--init`` file). BatchNorm's running statistics are averaged like the weights, which is close to
re-estimating them when the files are near each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gan_core.weights import load_weights, save_weights


def average_weights(files: list[Path], out: Path) -> dict:
    """Write the uniform average of ``files`` to ``out`` (fp16); returns its training summary."""
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
    save_weights(out, model.eval(), styles=first.styles, training=training, licence=first.licence, dtype=torch.float16)
    return training


def register(subparsers) -> None:
    p = subparsers.add_parser("average", help="the uniform average of weights files exported along one run (weight averaging)")
    p.add_argument("out", type=Path, help="the weights file to write (.safetensors)")
    p.add_argument("files", type=Path, nargs="+", help="two or more weights files of one configuration, e.g. RUN_DIR/exports/*")

    def run_average(args) -> str:
        training = average_weights(args.files, args.out)
        return f"wrote {args.out}: the mean of {len(args.files)} files " + json.dumps([a["steps"] for a in training["averaged_from"]])

    p.set_defaults(func=run_average)
