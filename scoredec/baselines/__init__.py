"""Baselines of the results table, one module each; importing this package registers them.

iql: joint IQL critic + advantage-weighted actors; matd3bc: per-agent TD3+BC; macql: per-agent
CQL critics with TD3 actors; omar: MA-CQL critics + zeroth-order (CEM-style) actor search.
"""

from scoredec.baselines import iql_awr  # noqa: F401
from scoredec.baselines import macql  # noqa: F401
from scoredec.baselines import matd3bc  # noqa: F401
from scoredec.baselines import omar  # noqa: F401
