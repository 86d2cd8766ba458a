"""Agreement data (Linzen rows, splits, vocabulary, batches), MNIST, and test suites."""
