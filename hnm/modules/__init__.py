"""LightningModules: encode -> negatives -> scores -> loss."""
