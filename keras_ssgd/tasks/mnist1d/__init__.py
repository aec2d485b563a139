"""MNIST-1D (Greydanus 2020), generated offline: the CPU-scale task.

- `data`: `load_mnist1d`, the dataset as NumPy batches (any backend).
- `cnn`: `mnist1d_cnn`, the benchmark's 1-D CNN, with or without BatchNorm.
- `lstm`: `mnist1d_lstm`, an LSTM classifier reading the signal as a sequence.
"""
