"""keras-alexnet: AlexNet (Krizhevsky et al., NIPS 2012) and VGG (Simonyan & Zisserman, 2014) in Keras 3."""

__version__ = "0.1.0"
