"""Build Fashion-MNIST-M: Fashion-MNIST blended with patches of real photographs, made as MNIST-M was.

The target domain of `examples/domain_shift.yaml`. Ganin & Lempitsky (2015)
made MNIST-M by blending each MNIST digit with a random patch of a colour
photograph: out = |patch - digit| per channel. Here the garments are the 10,000
Fashion-MNIST *test* images (so no garment of the source's training images
appears in the target domain) and the photographs are the colour photographs
that scikit-image bundles (`skimage.data`, no download). The images are
written as an image folder, one sub-folder per class (the Fashion-MNIST class
names), which `ingest.source: image_folder:DIR` reads; the example config uses
half of them, without labels, as the unlabelled target training split and the
other half as the labelled target test split.

    python examples/make_fashion_mnist_m.py [--output examples/data/fashion-mnist-m] [--limit N] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys

import numpy as np
from PIL import Image

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
LABEL_NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Colour photographs bundled in scikit-image's wheel (these load offline; others need pooch).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "stereo_motorcycle", "retina")
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fashion-mnist-m")


def read_idx(folder: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 28, 28] uint8, labels [N]) of one Fashion-MNIST IDX pair."""
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "rb") as handle:
        data = handle.read()
    count, height, width = (int(v) for v in np.frombuffer(data[4:16], ">u4"))
    images = np.frombuffer(data[16:], np.uint8).reshape(count, height, width)
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "rb") as handle:
        labels = np.frombuffer(handle.read()[8:], np.uint8)
    return images, labels


def load_photos() -> list[np.ndarray]:
    """The bundled colour photographs as uint8 [H, W, 3] arrays."""
    import skimage.data

    photos = []
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity)
            photo = photo[0]
        photos.append(np.ascontiguousarray(photo[..., :3], dtype=np.uint8))
    return photos


def blend(images: np.ndarray, photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST-M's recipe: |random photo patch - image| per channel, uint8 [N, H, W, 3]."""
    count, height, width = images.shape
    out = np.empty((count, height, width, 3), np.uint8)
    choices = rng.integers(len(photos), size=count)
    for index in range(count):
        photo = photos[choices[index]]
        top = rng.integers(photo.shape[0] - height)
        left = rng.integers(photo.shape[1] - width)
        patch = photo[top:top + height, left:left + width].astype(np.int16)
        out[index] = np.abs(patch - images[index].astype(np.int16)[..., None]).astype(np.uint8)
    return out


def write_image_folder(images: np.ndarray, labels: np.ndarray, output: str) -> None:
    """One PNG per image under `<output>/<class name>/`, written into a temporary folder then renamed."""
    tmp = output + ".tmp"
    for name in LABEL_NAMES:
        os.makedirs(os.path.join(tmp, name), exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(os.path.join(tmp, LABEL_NAMES[label], f"{index:05d}.png"))
    if os.path.isdir(output):
        import shutil

        shutil.rmtree(output)
    os.replace(tmp, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="image folder to write (replaced if present)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fashion-mnist", default=FASHION_MNIST_DIR, help="folder of the Fashion-MNIST IDX files")
    args = parser.parse_args(argv)
    images, labels = read_idx(args.fashion_mnist, "t10k")
    if args.limit is not None:
        images, labels = images[:args.limit], labels[:args.limit]
    blended = blend(images, load_photos(), np.random.default_rng(args.seed))
    write_image_folder(blended, labels, os.path.abspath(args.output))
    print(f"wrote {len(blended)} Fashion-MNIST-M images of {len(LABEL_NAMES)} classes into {os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
