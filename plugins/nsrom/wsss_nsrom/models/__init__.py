"""NSROM networks: the GloRe unit and the classifier / OA-CAM heads built on OAA's."""
