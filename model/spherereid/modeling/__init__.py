"""The network: backbones, the heads A-D and the losses (Sphere Softmax, softmax)."""
