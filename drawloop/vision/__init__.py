"""Seeing the drawings: embedders, a FAISS index, a gallery of human drawings, and training.

    from drawloop.vision.features import default_embedder, TextEmbedder   # images/text -> unit vectors
    from drawloop.vision.index import VectorIndex                         # FAISS + metadata side table
    from drawloop.vision.gallery import build_gallery                     # labelled reference drawings

Modules import torch and faiss lazily, so importing this package stays cheap.
"""
