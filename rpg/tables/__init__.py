"""Paper tables and figures from `rpg evaluate` files, and the claims judged from them.

- rpg.tables.registry: the one registry (`register_table` decorator: table id -> builder, plot, claims);
- rpg.tables.common: typed inputs and the helpers every builder shares; rpg.tables.judging: what a claim is;
- one module per group of builders, each registering its tables and their claims (imported below, once), and a
  domain's own tables in its package (`Domain.table_module`, e.g. rpg/segmentation/table.py for Table 2);
- rpg.tables.builders: Table 1, the generic builders and the entry point (`load_inputs`, `build_table`);
- rpg.tables.claims: the claims report over the registered claims.
"""

import importlib

from rpg.domains import table_modules
from rpg.tables import (  # noqa: F401  (each registers its tables when imported)
    ablations,
    baselines,
    builders,
    memory,
    sampling,
    tasks,
)

for _module in table_modules():     # a domain's paper tables live in its own package (rpg.domains)
    importlib.import_module(_module)
