"""Readers and writers at the edge of openfer: image files and bytes in, result tables out.

Everything here touches files or bytes; the rest of the package works on the numpy arrays it returns.
"""
