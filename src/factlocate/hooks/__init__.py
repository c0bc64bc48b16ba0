"""Interventions: small TransformerLens hooks `fn(activation, hook) -> activation`, composed by
tracing and editing (running a forward pass and reading activations live in `factlocate.forward`).

* `corruption.CorruptEmbedding`: add (or write) noise into the subject's token embeddings;
* `restoration.RestoreFromRow0`, `HoldFromCapture`, `WriteAt`, `Replace`, `Append`, `Chain`:
  restore or hold activations, or add rows to a batch partway up the model;
* `add_vector.AddVector`: add a trainable vector at chosen (row, position) pairs (v*, z).
"""
