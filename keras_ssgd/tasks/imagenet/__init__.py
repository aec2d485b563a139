"""ImageNet (ILSVRC 2012): Table 3 of the paper.

- `data`: `load_imagenet`, tensorflow-datasets with the standard ResNet
  preprocessing (needs TensorFlow).
- `resnet`: `imagenet_resnet`, ResNet-18 and ResNet-50 from keras-cv's
  backbone.
"""
