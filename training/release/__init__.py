"""Release: export a run to a model folder, the model card, publishing to the Hub."""
