#!/usr/bin/env python3
"""Converts a torchvision checkpoint (.pth: a state_dict, or a whole pickled model) to the
safetensors state_dict that `raagr2-lab classify import` reads.

    pip install torch safetensors
    python3 tools/torchvision_to_safetensors.py vgg16-397923af.pth vgg16.safetensors
"""
import re
import sys

import torch
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torchvision_to_safetensors.py IN.pth OUT.safetensors")
    source, target = sys.argv[1:]
    loaded = torch.load(source, map_location="cpu", weights_only=False)
    state = loaded.state_dict() if hasattr(loaded, "state_dict") else loaded
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    # The published DenseNet files use the legacy names `denselayer1.norm.1.weight`;
    # torchvision renames them on load to `denselayer1.norm1.weight`, as done here.
    legacy = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    rename = lambda k: legacy.sub(lambda m: m.group(1) + m.group(2), k.removeprefix("module."))
    tensors = {rename(k): v.detach().float().contiguous()
               for k, v in state.items()
               if torch.is_tensor(v) and not k.endswith("num_batches_tracked")}
    save_file(tensors, target)
    print(f"{target}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
