"""Pictures of labels: one frame (`labels show`) and a whole run (`labels stats`)."""
