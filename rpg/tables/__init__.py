"""Paper tables (rpg.tables.builders: the registry and the entry point; one module per group of builders)."""

from rpg.tables import builders  # noqa: F401  (first, so the builder modules it registers import it complete)
