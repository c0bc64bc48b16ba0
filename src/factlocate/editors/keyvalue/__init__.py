"""The key/value editors: an MLP's down projection read as a memory of keys (the subject) and values.

    rome        one rank-one update at one layer (Meng et al. 2022)
    memit       many facts over a range of layers (Meng et al. 2023)
    alphaedit   MEMIT projected onto the null space of preserved keys (Fang et al. 2025)

and what they share: `keys` (k̄, the fact token), `key_stats` (C = E[k kᵀ], cached), `target_vector` and
`target_batch` (v* and z, optimised at one layer), `context_templates`, `post_norm` (models whose MLP output
passes a norm before the residual).
"""
