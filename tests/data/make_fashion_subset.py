"""Cut the committed test subset (first 2000 train / 500 test) out of full Fashion-MNIST IDX files.

    python tests/data/make_fashion_subset.py /usr/share/datasets/fashion-mnist

Byte-for-byte reproducible: the IDX header is rewritten for the new count and gzip's timestamp
is fixed at 0.
"""

import gzip
import sys
from pathlib import Path

COUNTS = {
    "train-images-idx3-ubyte": 2000,
    "train-labels-idx1-ubyte": 2000,
    "t10k-images-idx3-ubyte": 500,
    "t10k-labels-idx1-ubyte": 500,
}
OUT = Path(__file__).parent / "fashion_mnist_subset"


def cut(raw: bytes, count: int) -> bytes:
    """The first `count` items of an IDX file, with the header's first dimension set to it."""
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    item = 1
    for d in dims[1:]:
        item *= d
    start = 4 + 4 * ndim
    header = raw[:4] + b"".join(d.to_bytes(4, "big") for d in [count, *dims[1:]])
    return header + raw[start : start + count * item]


if __name__ == "__main__":
    source = Path(sys.argv[1])
    for stem, count in COUNTS.items():
        raw = gzip.decompress((source / f"{stem}.gz").read_bytes())
        (OUT / f"{stem}.gz").write_bytes(gzip.compress(cut(raw, count), compresslevel=9, mtime=0))
