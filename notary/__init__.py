"""notary: evidence notarization and timestamping.

Hashes evidence items into RFC 4998 hash trees, timestamps each tree's root with RFC
3161 time-stamping authorities (and optionally an EVM anchor), and exports
self-contained proof bundles that anyone can verify offline.
"""

__version__ = "0.1.0"
