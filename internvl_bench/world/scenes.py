"""A procedurally generated world of shapes, for the demo models and the benchmark replicas of ``make demo``.

A scene is a background colour, up to four things in the cells of a 2x2 grid (a shape with a colour and a
texture), optionally a digit drawn in a free cell and a coloured border. Everything is drawn with PIL from
integers, so a scene and its pixels are the same on every machine; ``sample_scene`` draws one from a
``random.Random`` so a seed fixes a whole dataset. Videos are a scene whose things slide horizontally.

The attributes are what the questions and captions of the benchmarks ask about: which shapes (existence,
POPE), how many (count), where (position), what colour / texture (colour, artwork), the background
(scene), the border (posters), the digit (OCR, MNIST).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"red": (215, 40, 40), "green": (40, 165, 60), "blue": (40, 80, 215), "yellow": (235, 205, 35),
           "purple": (140, 55, 185), "orange": (240, 135, 30)}
BACKGROUNDS = {"white": (240, 240, 240), "black": (25, 25, 25), "grey": (125, 125, 125)}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon", "ring", "heart", "arrow")
TEXTURES = ("plain", "striped", "dotted")
#: cell index -> (column, row); column 0 is the left half, row 0 the top half
CELLS = ((0, 0), (1, 0), (0, 1), (1, 1))


@dataclass(frozen=True)
class Thing:
    shape: str
    colour: str
    texture: str = "plain"
    cell: int = 0

    @property
    def side(self) -> str:
        return "left" if CELLS[self.cell][0] == 0 else "right"


@dataclass(frozen=True)
class Scene:
    background: str
    things: tuple[Thing, ...]
    digit: int | None = None
    digit_cell: int | None = None
    border: str | None = None
    #: horizontal drift in pixels per frame of a video (0 for still images)
    motion: int = 0

    def count(self, shape: str | None = None, colour: str | None = None) -> int:
        return sum(1 for t in self.things if (shape is None or t.shape == shape) and (colour is None or t.colour == colour))

    def has(self, shape: str, colour: str | None = None) -> bool:
        return self.count(shape, colour) > 0


@dataclass(frozen=True)
class SceneSpec:
    """What ``sample_scene`` may draw."""

    min_things: int = 1
    max_things: int = 3
    textures: tuple[str, ...] = TEXTURES
    digit_probability: float = 0.25
    border_probability: float = 0.25
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = field(default_factory=lambda: tuple(COLOURS))


def sample_scene(rng: random.Random, spec: SceneSpec = SceneSpec()) -> Scene:
    n = rng.randint(spec.min_things, spec.max_things)
    cells = rng.sample(range(4), min(4, n + 1))
    things = tuple(Thing(rng.choice(spec.shapes), rng.choice(spec.colours), rng.choice(spec.textures), cell)
                   for cell in sorted(cells[:n]))
    digit = digit_cell = None
    if len(cells) > n and rng.random() < spec.digit_probability:
        digit, digit_cell = rng.randrange(10), cells[n]
    border = rng.choice(list(COLOURS)) if rng.random() < spec.border_probability else None
    return Scene(rng.choice(list(BACKGROUNDS)), things, digit, digit_cell, border)


def with_motion(scene: Scene, rng: random.Random) -> Scene:
    return replace(scene, motion=rng.choice((-2, -1, 1, 2)))


# -- drawing ------------------------------------------------------------------------------------------
def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, start: float = -math.pi / 2) -> list[tuple[float, float]]:
        return [(cx + radius * math.cos(start + 2 * math.pi * i / n), cy + radius * math.sin(start + 2 * math.pi * i / n))
                for i in range(n)]

    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return ring(3, r * 1.15)
    if shape == "diamond":
        return ring(4, r * 1.1)
    if shape == "hexagon":
        return ring(6, r)
    if shape == "star":
        outer, inner = ring(5, r * 1.1), ring(5, r * 0.45, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a, b = r, r * 0.36
        return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
                (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
    if shape == "arrow":
        return [(cx - r, cy - r * 0.3), (cx + r * 0.1, cy - r * 0.3), (cx + r * 0.1, cy - r * 0.8), (cx + r, cy),
                (cx + r * 0.1, cy + r * 0.8), (cx + r * 0.1, cy + r * 0.3), (cx - r, cy + r * 0.3)]
    if shape == "heart":
        points = []
        for i in range(24):
            t = 2 * math.pi * i / 24
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((cx + r * x / 16, cy - r * y / 15))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def _mask(shape: str, size: tuple[int, int], cx: float, cy: float, r: float) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        draw.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r), fill=255)
    return mask


def _fill(texture: str, colour: tuple[int, int, int], size: tuple[int, int], unit: int) -> Image.Image:
    """A solid, striped or dotted paint layer; the pattern colour is the object colour, lightened."""
    paint = Image.new("RGB", size, colour)
    if texture == "plain":
        return paint
    light = tuple(min(255, c + 110) for c in colour)
    draw = ImageDraw.Draw(paint)
    step = max(3, unit)
    if texture == "striped":
        for x in range(-size[1], size[0], 2 * step):
            draw.polygon([(x, 0), (x + step, 0), (x + step + size[1], size[1]), (x + size[1], size[1])], fill=light)
    elif texture == "dotted":
        radius = max(1, step // 2)
        for y in range(step // 2, size[1], 2 * step):
            for x in range(step // 2, size[0], 2 * step):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=light)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return paint


def render(scene: Scene, size: int = 96, frame: int = 0) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image (frame ``frame`` of its motion, for videos)."""
    image = Image.new("RGB", (size, size), BACKGROUNDS[scene.background])
    half, shift = size / 2, scene.motion * frame
    for thing in scene.things:
        col, row = CELLS[thing.cell]
        cx, cy = half * col + half / 2 + shift, half * row + half / 2
        mask = _mask(thing.shape, image.size, cx, cy, half * 0.36)
        image.paste(_fill(thing.texture, COLOURS[thing.colour], image.size, max(3, size // 24)), (0, 0), mask)
    if scene.digit is not None:
        col, row = CELLS[scene.digit_cell]
        ink = (255, 255, 255) if scene.background == "black" else (15, 15, 15)
        font = ImageFont.load_default(size=int(half * 0.8))
        ImageDraw.Draw(image).text((half * col + half / 2, half * row + half / 2), str(scene.digit), font=font,
                                   fill=ink, anchor="mm")
    if scene.border is not None:
        width = max(2, size // 20)
        ImageDraw.Draw(image).rectangle((0, 0, size - 1, size - 1), outline=COLOURS[scene.border], width=width)
    return image
