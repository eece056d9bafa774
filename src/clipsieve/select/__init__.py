"""Selection: filter expressions, presets, duplicates, top-N per source, clusters, classifier.

Every selection step marks rows of the clip table (``keep``/``drop_reason``) and never removes
them; export drops the rows whose ``keep`` is false.
"""
