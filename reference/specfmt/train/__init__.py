"""Creating drafts: `specfmt datagen` (documents and the verifier's features, cached) and `specfmt train` (the
runtime's own draft modules in train mode, for a frozen verifier), for eagle3, medusa and mlp_speculator.

Modules: sources (where documents come from), datagen (the feature cache), recipes (a new draft's config and
initial tensors), objective (targets, loss and metrics), loop (optimizer, DDP, validation), state (resumable
checkpoints).
"""

TRAINABLE = ("eagle3", "medusa", "mlp_speculator")  # the algorithms specfmt train makes (a recipe each)
