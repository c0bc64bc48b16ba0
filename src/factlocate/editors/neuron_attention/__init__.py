"""Neuron and attention editors: `kn` (knowledge neurons, Dai et al. 2022, chosen by `integrated_gradients`)
and `attn_edit` (fine-tuning an attention layer's query, key and value projections)."""
