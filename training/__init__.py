"""Training-side stages: build the dataset, augment, train, evaluate, publish."""
