"""Reading and writing what users keep: images, weights, exported results."""
