#!/usr/bin/env python3
"""Write the Pillow reference fixtures of image preparation.

For each case: a small input image (made here, seeded) and what Pillow makes of it, the
way `images.prepare` is specified: composite alpha on white, convert to RGB, apply the
EXIF orientation, then resize the centred square of side min(w, h) to size x size with
Pillow's bicubic filter:

    img.resize((size, size), Image.BICUBIC, box=((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2))

Outputs are lossless PNG. `datasets/tests/images_pillow.rs` prepares the same inputs
and compares, so CI needs no Python. Rerun after changing a case:

    $HOME/.cache/reasongen-venv/bin/python scripts/pillow_fixtures.py

Needs Pillow and numpy. The files are small (a few KB each) and committed.
"""

import io
import json
import pathlib

import numpy as np
import PIL
from PIL import Image, ImageOps

OUT = pathlib.Path(__file__).resolve().parent.parent / "datasets" / "tests" / "data" / "pillow"


def photo(w, h, seed):
    """Photo-like RGB: smooth colour fields, a few hard edges, and fine noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.3)
        img[..., c] = 128 + 90 * np.sin(2 * np.pi * (fx * x / w + fy * y / h) + phase)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.3) * min(w, h)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[inside] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def rings(w, h):
    """Black and white rings whose frequency rises outwards: aliasing shows at once."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = (x - w / 2) ** 2 + (y - h / 2) ** 2
    v = np.where(np.cos(r2 / (0.9 * min(w, h))) > 0, 255, 0)
    return np.stack([v, v[::-1], 255 - v], axis=-1).astype(np.uint8)


def square(img, size):
    w, h = img.size
    m = min(w, h)
    box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
    return img.resize((size, size), Image.BICUBIC, box=box)


def upright_rgb(img):
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def jpeg(img, **options):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **options)
    return buf.getvalue()


def png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def cases():
    """(name, input file name, input bytes, size, dct_scaling, what it checks)."""
    rgb = lambda w, h, seed: Image.fromarray(photo(w, h, seed))
    alpha = np.dstack([photo(64, 48, 5), (np.linspace(0, 255, 64)[None, :] * np.ones((48, 1))).astype(np.uint8)])
    rotated = rgb(60, 40, 8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    yield "landscape", "landscape.png", png(rgb(90, 60, 1)), 32, False, "downscale 1.875x, horizontal crop"
    yield "portrait", "portrait.png", png(rgb(45, 76, 2)), 32, False, "vertical crop at a half-pixel offset"
    yield "upscale", "upscale.png", png(rgb(20, 14, 3)), 48, False, "upscale 3.4x"
    yield "rings", "rings.png", png(Image.fromarray(rings(200, 150))), 20, False, "downscale 7.5x (wide kernel)"
    yield "alpha", "alpha.png", png(Image.fromarray(alpha, "RGBA")), 32, False, "alpha over white"
    yield "grey", "grey.png", png(rgb(50, 40, 6).convert("L")), 32, False, "grey to RGB"
    yield "photo_jpeg", "photo.jpg", jpeg(rgb(120, 90, 7), quality=90), 32, False, "JPEG decoders differ"
    yield "exif_rotated", "rotated.jpg", jpeg(rotated, quality=95, exif=exif.tobytes()), 32, False, "EXIF orientation 6"
    yield "cmyk", "cmyk.jpg", jpeg(rgb(60, 40, 9).convert("CMYK"), quality=95), 32, False, "Adobe CMYK JPEG"
    yield "dct_scaled", "large.jpg", jpeg(rgb(400, 300, 10), quality=80), 48, True, "decoded at 1/4 in the DCT"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"pillow": PIL.__version__, "cases": []}
    for name, file, data, size, dct, what in cases():
        (OUT / file).write_bytes(data)
        expected = square(upright_rgb(Image.open(io.BytesIO(data))), size)
        reference = f"{name}.pillow.png"
        expected.save(OUT / reference)
        manifest["cases"].append(
            {"name": name, "input": file, "size": size, "dct_scaling": dct, "pillow": reference, "checks": what}
        )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(manifest['cases'])} cases, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
