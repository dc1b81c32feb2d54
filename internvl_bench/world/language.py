"""Captions of the synthetic world in the eight XTD languages (en es fr zh it ko ru jp).

A caption lists the things (equal things grouped with a count; every thing named with its colour,
texture and shape), the digit and the border, then the background, in each language's word order. The grammar is simplified (no gender agreement): these are
a synthetic world's captions, written so that the same scene reads the same way in every language and a
tiny model can learn the words from pairs.
"""
from __future__ import annotations

from collections import Counter

from internvl_bench.world.scenes import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    TEXTURES,
    Scene,
    Thing,
)

LANGUAGES = ("en", "es", "fr", "zh", "it", "ko", "ru", "jp")

#: per language, the words of each attribute in the order of ``scenes`` (COLOURS, BACKGROUNDS, SHAPES)
_WORDS = {
    "en": dict(colours=list(COLOURS), backgrounds=list(BACKGROUNDS), shapes=list(SHAPES),
               textures={texture: texture for texture in TEXTURES}, numbers=["a", "two", "three", "four"]),
    "es": dict(colours=["rojo", "verde", "azul", "amarillo", "morado", "naranja"], backgrounds=["blanco", "negro", "gris"],
               shapes=["círculo", "cuadrado", "triángulo", "estrella", "rombo", "cruz", "hexágono", "anillo", "corazón",
                       "flecha"],
               textures={"plain": "liso", "striped": "rayado", "dotted": "punteado"}, numbers=["un", "dos", "tres", "cuatro"]),
    "fr": dict(colours=["rouge", "vert", "bleu", "jaune", "violet", "orange"], backgrounds=["blanc", "noir", "gris"],
               shapes=["cercle", "carré", "triangle", "étoile", "losange", "croix", "hexagone", "anneau", "cœur", "flèche"],
               textures={"plain": "uni", "striped": "rayé", "dotted": "pointillé"}, numbers=["un", "deux", "trois", "quatre"]),
    "it": dict(colours=["rosso", "verde", "blu", "giallo", "viola", "arancione"], backgrounds=["bianco", "nero", "grigio"],
               shapes=["cerchio", "quadrato", "triangolo", "stella", "rombo", "croce", "esagono", "anello", "cuore",
                       "freccia"],
               textures={"plain": "liscio", "striped": "a righe", "dotted": "a pois"}, numbers=["un", "due", "tre", "quattro"]),
    "ru": dict(colours=["красный", "зелёный", "синий", "жёлтый", "фиолетовый", "оранжевый"],
               backgrounds=["белом", "чёрном", "сером"],
               shapes=["круг", "квадрат", "треугольник", "звезда", "ромб", "крест", "шестиугольник", "кольцо", "сердце",
                       "стрелка"],
               textures={"plain": "однотонный", "striped": "полосатый", "dotted": "в горошек"}, numbers=["один", "два", "три", "четыре"]),
    "zh": dict(colours=["红色", "绿色", "蓝色", "黄色", "紫色", "橙色"], backgrounds=["白色", "黑色", "灰色"],
               shapes=["圆形", "正方形", "三角形", "星形", "菱形", "十字", "六边形", "圆环", "心形", "箭头"],
               textures={"plain": "纯色", "striped": "条纹", "dotted": "圆点"}, numbers=["一个", "两个", "三个", "四个"]),
    "jp": dict(colours=["赤い", "緑の", "青い", "黄色い", "紫の", "オレンジの"], backgrounds=["白い", "黒い", "灰色の"],
               shapes=["円", "四角", "三角", "星", "ひし形", "十字", "六角形", "輪", "ハート", "矢印"],
               textures={"plain": "無地の", "striped": "縞模様の", "dotted": "水玉の"}, numbers=["一つの", "二つの", "三つの", "四つの"]),
    "ko": dict(colours=["빨간색", "초록색", "파란색", "노란색", "보라색", "주황색"], backgrounds=["흰색", "검은색", "회색"],
               shapes=["원", "사각형", "삼각형", "별", "마름모", "십자가", "육각형", "고리", "하트", "화살표"],
               textures={"plain": "민무늬", "striped": "줄무늬", "dotted": "물방울무늬"}, numbers=["한 개의", "두 개의", "세 개의", "네 개의"]),
}
_PHRASES = {
    "en": dict(digit="the number {d}", border="a {c} border", scene="{things} on a {bg} background", join=", ",
               last=" and "),
    "es": dict(digit="el número {d}", border="un borde {c}", scene="{things} sobre un fondo {bg}", join=", ", last=" y "),
    "fr": dict(digit="le chiffre {d}", border="un cadre {c}", scene="{things} sur un fond {bg}", join=", ", last=" et "),
    "it": dict(digit="il numero {d}", border="una cornice {c}", scene="{things} su uno sfondo {bg}", join=", ",
               last=" e "),
    "ru": dict(digit="цифра {d}", border="{c} рамка", scene="{things} на {bg} фоне", join=", ", last=" и "),
    "zh": dict(digit="数字{d}", border="{c}边框", scene="{bg}背景上的{things}", join="、", last="和"),
    "jp": dict(digit="数字の{d}", border="{c}枠", scene="{bg}背景の上の{things}", join="、", last="と"),
    "ko": dict(digit="숫자 {d}", border="{c} 테두리", scene="{bg} 배경 위의 {things}", join=", ", last="와 "),
}
_COLOUR_INDEX = {name: i for i, name in enumerate(COLOURS)}
_BACKGROUND_INDEX = {name: i for i, name in enumerate(BACKGROUNDS)}
_SHAPE_INDEX = {name: i for i, name in enumerate(SHAPES)}


def word(kind: str, name: str, language: str = "en") -> str:
    """A colour / background / shape / texture name in ``language``."""
    words = _WORDS[language]
    if kind == "texture":
        return words["textures"][name]
    index = {"colour": _COLOUR_INDEX, "background": _BACKGROUND_INDEX, "shape": _SHAPE_INDEX}[kind][name]
    return words[{"colour": "colours", "background": "backgrounds", "shape": "shapes"}[kind]][index]


def thing_phrase(thing: Thing, count: int, language: str) -> str:
    words = _WORDS[language]
    number = words["numbers"][count - 1]
    colour, shape = word("colour", thing.colour, language), word("shape", thing.shape, language)
    texture = word("texture", thing.texture, language)
    if language == "en":
        number = "an" if count == 1 and colour[0] in "aeiou" else number
        parts = [number, colour, texture, shape + ("s" if count > 1 else "")]
    elif language in ("zh", "jp"):
        return number + texture + colour + shape
    elif language == "ko":
        parts = [number, texture, colour, shape]
    elif language == "ru":
        parts = [number, colour, texture, shape] if count == 1 else [number, shape, colour, texture]
    else:
        parts = [number, shape, colour, texture]
    return " ".join(p for p in parts if p)


def describe(scene: Scene, language: str = "en") -> str:
    """The caption of ``scene`` in ``language``."""
    phrases = _PHRASES[language]
    groups = Counter((t.shape, t.colour, t.texture) for t in scene.things)
    items = [thing_phrase(Thing(shape, colour, texture), n, language) for (shape, colour, texture), n in groups.items()]
    if scene.digit is not None:
        items.append(phrases["digit"].format(d=scene.digit))
    if scene.border is not None:
        items.append(phrases["border"].format(c=word("colour", scene.border, language)))
    things = items[0] if len(items) == 1 else phrases["join"].join(items[:-1]) + phrases["last"] + items[-1]
    return phrases["scene"].format(things=things, bg=word("background", scene.background, language))
