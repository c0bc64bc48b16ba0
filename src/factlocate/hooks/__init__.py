"""TransformerLens hooks, composed by tracing and editing.

Each hook is a small callable `fn(activation, hook) -> activation`:

* `corruption.CorruptEmbedding`: add (or write) noise into the subject's token embeddings;
* `restoration.RestoreFromRow0`, `WriteAt`, `Replace`, `Append`, `Chain`: restore or inject activations,
  or add rows to a batch partway up the model;
* `severing.Record`, `FreezeFromRecord`: hold module outputs at a recorded pass's values;
* `skipping.skip_blocks`: a context manager that turns lower blocks into identities;
* `add_vector.AddVector`, `partial_forward`: used by the editors.
"""
