"""Scriabin's classifier, the serving path: fetch -> audio -> model (pretrained backbones and a
head) -> aggregate, behind one async service (`classifier.service.ClassifierService`). Training
and research live in `classifier.training`, which serving never imports. Importing this package
loads nothing heavy."""
