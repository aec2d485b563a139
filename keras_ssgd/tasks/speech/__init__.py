"""Speech recognition with CTC (WSJ or LibriSpeech): Table 4 of the paper.

- `ctc`: the character alphabet, the CTC loss, greedy decoding and the word
  error rate (needs TensorFlow).
- `data`: log-mel features and character labels, from tensorflow-datasets
  or from files on disk (needs TensorFlow).
- `sgcn`: `sgcn`, the Simple Gated ConvNet of Lee et al. (2019).
"""
