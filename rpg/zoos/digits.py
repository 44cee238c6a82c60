"""The small CNN of the sklearn-digits benchmark zoos (benchmarks/digits_zoo.py collects them).

Its manifests name this class as their architecture (`rpg.zoos.digits:DigitsCNN`, a module:function factory of
rpg.zoos.architectures), so evaluation and training rebuild it like any registered architecture.

- ``digits_2k9``: Conv(1->8, k3) -> LReLU -> Conv(8->8, k3) -> LReLU -> Flatten -> Linear(128->16) -> LReLU
  -> Linear(16->10): 2,898 parameters, 17 tokens of 256.
- ``digits_68k``: the same net with 32, 64 and 48 channels/units: 68,506 parameters, 272 tokens of 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# zoo name -> DigitsCNN(c1, c2, hidden)
ZOOS = {"digits_2k9": (8, 8, 16), "digits_68k": (32, 64, 48)}


class DigitsCNN(nn.Module):
    def __init__(self, c1: int = 8, c2: int = 8, hidden: int = 16, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3)
        self.conv2 = nn.Conv2d(c1, c2, 3)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)  # 8x8 -> 6x6 -> 4x4
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x))
        x = F.leaky_relu(self.conv2(x))
        x = F.leaky_relu(self.fc1(x.flatten(1)))
        return self.fc2(x)
