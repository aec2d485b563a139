"""CIFAR-10 and CIFAR-100: Tables 1 and 2 and Figs. 3 to 5 of the paper.

- `data`: `load_cifar`, tensorflow-datasets with the paper's augmentation
  (needs TensorFlow).
- `resnet`: `cifar_resnet`, ResNet-20 to -110 (He et al. 2016).
- `wide_resnet`: `wide_resnet`, the paper's WRN-28-2 and WRN-28-4 among them
  (Zagoruyko & Komodakis 2016).
- `vgg`: `cifar_vgg`, VGG-6 and VGG-16 with BatchNorm.
"""
