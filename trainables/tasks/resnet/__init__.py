"""ResNet-50 v1.5 on ImageNet: the model, the study's recipe, the folder pipeline."""
