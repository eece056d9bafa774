"""The labelling page: watch clips, label them good/bad with one key, train a classifier on it."""
