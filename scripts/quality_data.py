"""The drawn and the image dataset of the quality table (`bench --quality --datasets FILE,...`), made reproducibly.

- `drawn.csv`: what the Train page's *Draw your own…* downloads for a drawing
  of a five-pointed star's outline (a Line stroke) around a filled disc (a
  Filled shape stroke), read back by the upload like any CSV;
- `picture.png`: a 256×256 greyscale picture, a dark ring with a dark bar
  through it and a lighter square, read as a density (darker = more mass).

    .venv/bin/python scripts/quality_data.py OUT_FOLDER
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnf_core.datasets import DrawingConfig, Stroke, csv_bytes, from_drawing  # noqa: E402


def star_and_disc() -> DrawingConfig:
    outline = []
    for k in range(11):  # the star's ten corners, closed
        radius = 3.0 if k % 2 == 0 else 1.3
        angle = math.pi / 2 + k * math.pi / 5
        outline.append((radius * math.cos(angle), radius * math.sin(angle)))
    disc = [(0.7 * math.cos(2 * math.pi * k / 24), 0.7 * math.sin(2 * math.pi * k / 24)) for k in range(24)]
    return DrawingConfig((Stroke(tuple(outline)), Stroke(tuple(disc), filled=True)), thickness=0.15)


def ring_bar_square() -> Image.Image:
    picture = Image.new("L", (256, 256), 255)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((28, 28, 228, 228), outline=0, width=22)
    draw.rectangle((118, 40, 138, 216), fill=0)
    draw.rectangle((160, 150, 200, 190), fill=150)
    return picture


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drawn.csv").write_bytes(csv_bytes(from_drawing(star_and_disc(), name="drawn")))
    ring_bar_square().save(folder / "picture.png")
    print(f"wrote {folder / 'drawn.csv'} and {folder / 'picture.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
