"""Creating drafts: `specfmt datagen` (documents and the verifier's features, cached) and `specfmt train` (the
runtime's own draft modules in train mode, for a frozen verifier), for each algorithm of recipes.RECIPES.

Modules: sources (where documents come from), datagen (the feature cache), options (the options and their
flags), recipes (a new draft's config and initial tensors, one module per algorithm), objective (targets, loss
and metrics), loop (optimizer, DDP, validation, provenance), state (resumable checkpoints).
"""
