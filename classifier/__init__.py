"""Scriabin's classifier: fetch -> audio -> features -> model -> aggregate, behind one async
service (`classifier.service.ClassifierService`). Importing this package loads nothing heavy."""
