"""Fig. 8: training memory vs number of generated parameters, for RPG and the Table 8 baselines.

The study is the library's (rpg.memory_study; `rpg memory-study`, which `rule fig8` runs): this script is the same
command under its older name.

    python benchmarks/memory.py --out results/mini/fig8.json [--sizes ...] [--methods rpg:base,...] [--cap-gib 20]
"""

from __future__ import annotations

from rpg.cli.memory_study import main

if __name__ == "__main__":
    raise SystemExit(main())
