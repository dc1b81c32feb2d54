"""Labelled data of the synthetic world: classification sets, and questions with their answers.

Classification sets stand in for three Table B datasets, with class names and templates of their own
(written into the replicas' ``classnames.txt`` / ``zeroshot_classification_templates.txt``):
``cifar10`` -- the ten shapes; ``mnist`` -- the ten digits; ``dtd`` -- the three textures.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from internvl_bench.world.scenes import BACKGROUNDS, COLOURS, SHAPES, TEXTURES, Scene, Thing


@dataclass(frozen=True)
class ClassificationSet:
    #: what the class is: the thing's "shape", its "texture", or the "digit" drawn alone
    attribute: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]

    def scene(self, label: int, rng: random.Random) -> Scene:
        """A scene of class ``label`` with every other attribute random."""
        background = rng.choice(list(BACKGROUNDS))
        cell = rng.randrange(4)
        if self.attribute == "digit":
            return Scene(background, (), digit=label, digit_cell=cell)
        shape = SHAPES[label] if self.attribute == "shape" else rng.choice(SHAPES)
        texture = TEXTURES[label] if self.attribute == "texture" else rng.choice(TEXTURES)
        return Scene(background, (Thing(shape, rng.choice(list(COLOURS)), texture, cell),))


CLASSIFICATION = {
    "cifar10": ClassificationSet("shape", SHAPES, ("a photo of a {c}.", "a picture of a {c}.", "a drawing of a {c}.",
                                                   "a {c} on a background.")),
    "mnist": ClassificationSet("digit", tuple(str(d) for d in range(10)),
                               ('a photo of the number: "{c}".', "the number {c}.")),
    "dtd": ClassificationSet("texture", TEXTURES, ("a {c} shape.", "a photo of a {c} pattern.", "a {c} texture.")),
}


def classification_prompts() -> list[str]:
    """Every template filled with every class name, of every set."""
    return [t.format(c=c) for s in CLASSIFICATION.values() for t in s.templates for c in s.classes]


def classification_example(rng: random.Random) -> tuple[Scene, str]:
    """A scene of a random class of a random set, with one of that set's prompts for its class."""
    chosen = CLASSIFICATION[rng.choice(list(CLASSIFICATION))]
    label = rng.randrange(len(chosen.classes))
    return chosen.scene(label, rng), rng.choice(chosen.templates).format(c=chosen.classes[label])


# -- questions for the chat benchmarks ---------------------------------------------------------------------
SHORT = "Answer the question using a single word or phrase."
UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
#: colour words of other languages, for the text_translation stand-in
FOREIGN_COLOURS = {"es": ("rojo", "verde", "azul", "amarillo", "morado", "naranja"),
                   "fr": ("rouge", "vert", "bleu", "jaune", "violet", "orange")}


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


def _plural(shape: str) -> str:
    return shape + "s"


def _one_thing(scene: Scene, rng: random.Random) -> Thing | None:
    """A thing whose shape occurs once in the scene (so 'the <shape>' names it)."""
    unique = [t for t in scene.things if scene.count(t.shape) == 1]
    return rng.choice(unique) if unique else None


def _absent_shape(scene: Scene, rng: random.Random) -> str:
    return rng.choice([s for s in SHAPES if not scene.has(s)])


def _yes_no(true: str, false: str) -> tuple[QA, QA]:
    return QA(true, "Yes"), QA(false, "No")


def mme_pair(subtask: str, scene: Scene, rng: random.Random) -> tuple[QA, QA] | None:
    """The two questions of an MME-style image (answers Yes, then No) for a subtask's stand-in property,
    or None when the scene cannot carry that property. Questions end with "Please answer yes or no." as in MME."""
    thing = _one_thing(scene, rng)
    n = len(scene.things)
    other = lambda pool, value: rng.choice([p for p in pool if p != value])  # noqa: E731
    if subtask == "existence" and scene.things:
        t = rng.choice(scene.things)
        pair = _yes_no(f"Is there a {t.shape} in the image?", f"Is there a {_absent_shape(scene, rng)} in the image?")
    elif subtask == "count" and scene.things:
        wrong = other(range(1, 5), n)
        pair = _yes_no(f"Are there {n} shapes in the image?", f"Are there {wrong} shapes in the image?")
    elif subtask == "position" and thing:
        side = thing.side
        pair = _yes_no(f"Is the {thing.shape} on the {side} side of the image?",
                       f"Is the {thing.shape} on the {'left' if side == 'right' else 'right'} side of the image?")
    elif subtask == "color" and thing:
        pair = _yes_no(f"Is the {thing.shape} {thing.colour}?", f"Is the {thing.shape} {other(COLOURS, thing.colour)}?")
    elif subtask == "posters" and scene.border:
        pair = _yes_no(f"Does this image have a {scene.border} border?",
                       f"Does this image have a {other(COLOURS, scene.border)} border?")
    elif subtask == "celebrity" and len(scene.things) == 1:
        shape = scene.things[0].shape
        pair = _yes_no(f"Is this a picture of a {shape}?", f"Is this a picture of a {other(SHAPES, shape)}?")
    elif subtask == "scene":
        pair = _yes_no(f"Is the background of the image {scene.background}?",
                       f"Is the background of the image {other(BACKGROUNDS, scene.background)}?")
    elif subtask == "landmark" and thing:
        top = thing.cell < 2
        pair = _yes_no(f"Is the {thing.shape} in the {'top' if top else 'bottom'} half of the image?",
                       f"Is the {thing.shape} in the {'bottom' if top else 'top'} half of the image?")
    elif subtask == "artwork" and thing:
        pair = _yes_no(f"Is the {thing.shape} {thing.texture}?", f"Is the {thing.shape} {other(TEXTURES, thing.texture)}?")
    elif subtask == "OCR" and scene.digit is not None:
        pair = _yes_no(f"Is the number {scene.digit} written in the image?",
                       f"Is the number {other(range(10), scene.digit)} written in the image?")
    elif subtask == "commonsense_reasoning" and scene.things:
        pair = (QA("Is there more than one shape in the image?", "Yes" if n > 1 else "No"),
                QA("Is there exactly one shape in the image?", "Yes" if n == 1 else "No"))
        pair = pair if pair[0].answer == "Yes" else pair[::-1]
    elif subtask == "numerical_calculation" and scene.things:
        k = rng.randint(1, 3)
        pair = _yes_no(f"Is the number of shapes plus {k} equal to {n + k}?",
                       f"Is the number of shapes plus {k} equal to {other(range(2, 8), n + k)}?")
    elif subtask == "text_translation" and thing:
        words = FOREIGN_COLOURS[rng.choice(list(FOREIGN_COLOURS))]
        index = list(COLOURS).index(thing.colour)
        pair = _yes_no(f"Is the {thing.shape} {words[index]}?",
                       f"Is the {thing.shape} {words[other(range(len(words)), index)]}?")
    elif subtask == "code_reasoning" and scene.things:
        odd = n % 2 == 1
        pair = (QA("Is the number of shapes in the image odd?", "Yes" if odd else "No"),
                QA("Is the number of shapes in the image even?", "No" if odd else "Yes"))
        pair = pair if odd else pair[::-1]
    else:
        return None
    return tuple(QA(q.question + " Please answer yes or no.", q.answer) for q in pair)


def pope_question(scene: Scene, shape: str) -> QA:
    return QA(f"Is there a {shape} in the image?", "yes" if scene.has(shape) else "no")


TINY_LVLM = ("Visual_Reasoning", "Visual_Perception", "Visual_Knowledge_Acquisition", "Visual_Commonsense",
             "Object_Hallucination")


def tiny_lvlm_question(category: str, scene: Scene, rng: random.Random) -> QA | None:
    """A Tiny LVLM-style question (ground truth: one word) of a category's stand-in ability."""
    thing = _one_thing(scene, rng)
    if category == "Visual_Reasoning" and scene.things:
        return QA("How many shapes are there in the image?", str(len(scene.things)))
    if category == "Visual_Perception" and thing:
        return QA(f"What colour is the {thing.shape}?", thing.colour)
    if category == "Visual_Knowledge_Acquisition" and scene.digit is not None:
        return QA("What number is written in the image?", str(scene.digit))
    if category == "Visual_Commonsense":
        return QA("What colour is the background?", scene.background)
    if category == "Object_Hallucination" and scene.things:
        shape = rng.choice(scene.things).shape if rng.random() < 0.5 else _absent_shape(scene, rng)
        return QA(f"Is there a {shape} in the image?", "yes" if scene.has(shape) else "no")
    return None


def short_answer_question(scene: Scene, rng: random.Random) -> QA | None:
    """A VQA / GQA-style question with a one-word answer (colour, shape, count, side, texture, background)."""
    thing = _one_thing(scene, rng)
    kind = rng.choice(("colour", "shape", "count", "side", "texture", "background"))
    if kind == "background":
        return QA("What colour is the background?", scene.background)
    if kind == "count" and scene.things:
        return QA("How many shapes are there?", str(len(scene.things)))
    if thing is None:
        return None
    if kind == "colour":
        return QA(f"What colour is the {thing.shape}?", thing.colour)
    if kind == "shape":
        return QA(f"What shape is {thing.colour}?", thing.shape) if scene.count(colour=thing.colour) == 1 else None
    if kind == "side":
        return QA(f"Which side of the image is the {thing.shape} on?", thing.side)
    return QA(f"What pattern does the {thing.shape} have?", thing.texture)
