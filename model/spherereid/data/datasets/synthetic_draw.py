"""Drawing of the synthetic ReID images: persons, camera backgrounds and camera/image effects.

A `Person` is a bundle of appearance attributes (clothes colours and patterns, hair, bag, body
proportions); a `Camera` holds one camera's look (colour cast, background, scale, blur, noise).
`render(person, camera, rng, height, width)` draws one (height, width, 3) uint8 image; every random
choice comes from `rng`, so the same generator state gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

CLOTHES: tuple[RGB, ...] = (
    (200, 30, 35),
    (120, 20, 30),
    (235, 130, 30),
    (230, 205, 50),
    (50, 150, 60),
    (25, 80, 40),
    (30, 140, 140),
    (120, 170, 225),
    (35, 70, 180),
    (25, 30, 70),
    (120, 50, 150),
    (230, 130, 170),
    (235, 235, 230),
    (170, 170, 170),
    (95, 95, 100),
    (25, 25, 28),
    (110, 70, 40),
    (205, 185, 145),
)
SKIN: tuple[RGB, ...] = ((240, 200, 170), (210, 160, 120), (160, 110, 75), (100, 65, 45))
HAIR: tuple[RGB, ...] = ((20, 15, 10), (90, 55, 30), (200, 160, 90), (140, 140, 140), (150, 50, 20))
PATTERNS = ("plain", "stripes", "checks", "logo")
LOWER_KINDS = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag", "shoulder")


@dataclass(frozen=True)
class Person:
    """Appearance attributes of one identity."""

    upper: RGB
    upper2: RGB  # pattern colour
    pattern: str
    short_sleeves: bool
    lower: RGB
    lower_kind: str
    shoes: RGB
    skin: RGB
    hair: RGB
    long_hair: bool
    bag: str
    bag_colour: RGB
    bag_right: bool
    width: float  # shoulder width scale
    legs: float  # leg length as a fraction of the height


@dataclass(frozen=True)
class Camera:
    """One camera's look: colour matrix, background texture (H', W', 3) uint8, person scale, blur."""

    matrix: np.ndarray  # (3, 3) applied to RGB in [0, 255]
    offset: np.ndarray  # (3,)
    background: np.ndarray
    scale: float  # person height / image height
    blur: float
    noise: float
    back_view: float  # probability of a back view
    crop: float = 0.06  # largest crop margin per side, as a fraction of the image (crop jitter)


@dataclass(frozen=True)
class Domain:
    """A camera network's look: the ranges `random_camera` draws from (colour cast, light, crop jitter).

    Domain "a" is the original generator; "b" shifts it: a shared blue-green cast, more
    desaturation, darker scenes with dark tops and bright floors, smaller figures, looser crops, a
    little more blur and noise. Tuned so that with the quickstart config each model scores clearly lower
    on the other domain but far above chance (measured: rank-1 91.7% -> 41.7% from a to b, 92.4% ->
    66.4% from b to a). Changing only ranges keeps the number of random draws, so domain "a" images stay
    byte-identical.
    """

    gain: float = 0.25  # per-channel gain in 1 +- gain
    tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to the gains (a shared colour cast)
    desat: float = 0.3
    light: tuple[float, float] = (0.8, 1.1)  # overall brightness factor
    offset: float = 12.0
    top: tuple[int, int] = (90, 180)  # background brightness, top and bottom of the gradient
    bottom: tuple[int, int] = (70, 170)
    scale: tuple[float, float] = (0.78, 0.94)
    blur: tuple[float, float] = (0.0, 1.0)
    noise: tuple[float, float] = (2.0, 7.0)
    crop: float = 0.06


DOMAINS: dict[str, Domain] = {
    "a": Domain(),
    "b": Domain(
        gain=0.3,
        tint=(-0.15, 0.05, 0.3),
        desat=0.45,
        light=(0.7, 1.0),
        offset=15.0,
        top=(30, 90),
        bottom=(150, 230),
        scale=(0.7, 0.86),
        blur=(0.2, 1.1),
        noise=(3.0, 8.0),
        crop=0.1,
    ),
}


def _jitter(rng: np.random.Generator, colour: RGB, amount: int = 14) -> RGB:
    c = np.clip(np.array(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def random_person(rng: np.random.Generator) -> Person:
    """Draw one identity's attributes."""
    ui, u2 = rng.choice(len(CLOTHES), 2, replace=False)
    return Person(
        upper=_jitter(rng, CLOTHES[ui]),
        upper2=_jitter(rng, CLOTHES[u2]),
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        short_sleeves=bool(rng.random() < 0.4),
        lower=_jitter(rng, CLOTHES[rng.integers(len(CLOTHES))]),
        lower_kind=LOWER_KINDS[rng.choice(3, p=[0.6, 0.25, 0.15])],
        shoes=_jitter(rng, CLOTHES[rng.choice([12, 13, 14, 15, 16, 0, 8])]),
        skin=_jitter(rng, SKIN[rng.integers(len(SKIN))], 8),
        hair=_jitter(rng, HAIR[rng.integers(len(HAIR))], 8),
        long_hair=bool(rng.random() < 0.4),
        bag=BAGS[rng.choice(4, p=[0.4, 0.25, 0.15, 0.2])],
        bag_colour=_jitter(rng, CLOTHES[rng.integers(len(CLOTHES))]),
        bag_right=bool(rng.random() < 0.5),
        width=float(rng.uniform(0.85, 1.2)),
        legs=float(rng.uniform(0.42, 0.5)),
    )


def person_key(p: Person) -> tuple:
    """The coarse attribute combination; the generator keeps it unique per identity."""
    return (p.upper, p.pattern, p.lower, p.lower_kind, p.bag, p.long_hair, p.hair)


def _muted(rng: np.random.Generator, base: np.ndarray) -> RGB:
    c = 0.7 * base + 0.3 * rng.integers(0, 256, 3)
    return (int(c[0]), int(c[1]), int(c[2]))


def random_camera(rng: np.random.Generator, height: int, width: int, domain: Domain = DOMAINS["a"]) -> Camera:
    """Draw one camera of `domain`: colour cast, desaturation, brightness, background, scale, blur."""
    gains = 1.0 + np.array(domain.tint) + rng.uniform(-domain.gain, domain.gain, 3)
    desat = rng.uniform(0.0, domain.desat)
    grey = np.full((3, 3), 1.0 / 3.0)
    matrix = rng.uniform(*domain.light) * ((1 - desat) * np.diag(gains) + desat * grey)
    offset = rng.uniform(-domain.offset, domain.offset, 3)
    bh, bw = 2 * height + 64, 4 * width
    top = rng.integers(*domain.top) + rng.integers(-25, 26, 3)
    bottom = rng.integers(*domain.bottom) + rng.integers(-25, 26, 3)
    t = np.linspace(0.0, 1.0, bh)[:, None, None]
    bg = (1 - t) * top + t * bottom + np.zeros((1, bw, 1))
    img = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    floor = int(bh * rng.uniform(0.6, 0.85))
    draw.rectangle((0, floor, bw, bh), fill=_muted(rng, bottom))
    for _ in range(int(rng.integers(2, 7))):  # windows, doors, signs
        x, y = int(rng.integers(0, bw)), int(rng.integers(0, floor))
        w, h = int(rng.integers(4, bw // 4)), int(rng.integers(6, bh // 2))
        draw.rectangle((x, y, x + w, y + h), fill=_muted(rng, top))
    for _ in range(int(rng.integers(0, 3))):  # poles
        x = int(rng.integers(0, bw))
        draw.rectangle((x, 0, x + int(rng.integers(3, 8)), floor), fill=_muted(rng, top))
    return Camera(
        matrix=matrix,
        offset=offset,
        background=np.asarray(img),
        scale=float(rng.uniform(*domain.scale)),
        blur=float(rng.uniform(*domain.blur)),
        noise=float(rng.uniform(*domain.noise)),
        back_view=float(rng.uniform(0.2, 0.8)),
        crop=domain.crop,
    )


def _quad(x0: float, x1: float, y0: float, x2: float, x3: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x3, y1), (x2, y1)]


@dataclass(frozen=True)
class _Frame:
    """Where a person stands: body fractions -> pixels, with a lean (points higher up move sideways)."""

    cx: float
    feet: float
    h: float
    lean: float

    def X(self, x: float, y: float) -> float:  # noqa: N802 (x in body widths at pixel row y -> column)
        return self.cx + x * self.h + self.lean * (self.feet - y)

    def Y(self, f: float) -> float:  # noqa: N802 (fraction of height from the top -> pixel row)
        return self.feet - self.h + f * self.h


def _draw_legs(d: ImageDraw.ImageDraw, p: Person, f: _Frame, stride: float, hip: float, knee: float) -> None:
    """Legs (trousers or skin), shorts, shoes, then a skirt."""
    X, Y = f.X, f.Y
    ww, ankle = 0.11 * p.width, 0.965
    legw = 0.045 * p.width
    for side, s in ((-1, stride), (1, -stride)):  # legs, then shoes
        xa, xb = side * 0.05 * p.width, side * 0.05 * p.width + s
        pts = [
            (X(xa - legw, Y(hip)), Y(hip)),
            (X(xa + legw, Y(hip)), Y(hip)),
            (X(xb + legw * 0.8, Y(ankle)), Y(ankle)),
            (X(xb - legw * 0.8, Y(ankle)), Y(ankle)),
        ]
        d.polygon(pts, fill=p.lower if p.lower_kind == "trousers" else p.skin)
        if p.lower_kind == "shorts":
            xm = (xa + xb) / 2
            d.polygon(
                _quad(
                    X(xa - legw, Y(hip)),
                    X(xa + legw, Y(hip)),
                    Y(hip),
                    X(xm - legw, Y(knee)),
                    X(xm + legw, Y(knee)),
                    Y(knee),
                ),
                fill=p.lower,
            )
        d.ellipse((X(xb - 0.05, Y(ankle)), Y(0.955), X(xb + 0.05, Y(ankle)), Y(1.0)), fill=p.shoes)
    if p.lower_kind == "skirt":
        d.polygon(
            _quad(
                X(-ww, Y(hip - 0.03)),
                X(ww, Y(hip - 0.03)),
                Y(hip - 0.03),
                X(-ww * 1.5, Y(knee)),
                X(ww * 1.5, Y(knee)),
                Y(knee),
            ),
            fill=p.lower,
        )


def _draw_torso(
    img: Image.Image, d: ImageDraw.ImageDraw, p: Person, f: _Frame, hip: float, back: bool
) -> None:
    """Long hair behind the shoulders (front view), the upper body and its pattern."""
    X, Y, h = f.X, f.Y, f.h
    sw, ww = 0.13 * p.width, 0.11 * p.width
    y0, y1 = Y(0.16), Y(hip + 0.02)
    torso = _quad(X(-sw, y0), X(sw, y0), y0, X(-ww, y1), X(ww, y1), y1)
    if p.long_hair and not back:  # hair behind the shoulders
        d.rectangle((X(-0.065, Y(0.05)), Y(0.05), X(0.065, Y(0.05)), Y(0.22)), fill=p.hair)
    d.polygon(torso, fill=p.upper)
    if p.pattern in ("stripes", "checks"):
        mask = Image.new("L", img.size, 0)
        ImageDraw.Draw(mask).polygon(torso, fill=255)
        lines = Image.new("L", img.size, 0)
        ld = ImageDraw.Draw(lines)
        step = max(3, int(0.045 * h))
        for y in range(int(y0), int(y1), step):
            ld.rectangle((0, y, img.size[0], y + step // 2 - 1), fill=255)
        if p.pattern == "checks":
            for x in range(int(X(-sw, y0)), int(X(sw, y0)) + 1, step):
                ld.rectangle((x, 0, x + step // 2 - 1, img.size[1]), fill=255)
        img.paste(p.upper2, mask=ImageChops.multiply(mask, lines))
    elif p.pattern == "logo" and not back:
        r, yc = 0.045, Y(0.26)
        d.ellipse((X(-r, yc), yc - r * h, X(r, yc), yc + r * h), fill=p.upper2)


def _draw_arms(
    d: ImageDraw.ImageDraw, p: Person, rng: np.random.Generator, f: _Frame, arm_end: float
) -> None:
    """Sleeves and bare forearms, one swing drawn from `rng` per side."""
    X, Y = f.X, f.Y
    sw = 0.13 * p.width
    for side in (-1, 1):
        swing = side * rng.uniform(0.0, 0.04)
        xs, xe = side * (sw + 0.02), side * (sw + 0.03) + swing
        sleeve_end = 0.3 if p.short_sleeves else arm_end - 0.03
        ys = Y(sleeve_end)
        xm = xs + (xe - xs) * (sleeve_end - 0.17) / (arm_end - 0.17)
        d.polygon(
            _quad(
                X(xs - 0.03, Y(0.17)), X(xs + 0.03, Y(0.17)), Y(0.17), X(xm - 0.03, ys), X(xm + 0.03, ys), ys
            ),
            fill=p.upper,
        )
        ye = Y(arm_end)
        d.polygon(
            _quad(X(xm - 0.025, ys), X(xm + 0.025, ys), ys, X(xe - 0.025, ye), X(xe + 0.025, ye), ye),
            fill=p.skin,
        )


def _draw_head(d: ImageDraw.ImageDraw, p: Person, f: _Frame, back: bool) -> None:
    """Neck, head, hair (long hair falls over the back in a back view)."""
    X, Y, h = f.X, f.Y, f.h
    hx, hy = X(0.0, Y(0.07)), Y(0.075)
    hr_x, hr_y = 0.055 * h, 0.068 * h
    d.rectangle((hx - 0.02 * h, Y(0.13), hx + 0.02 * h, Y(0.17)), fill=p.skin)  # neck
    d.ellipse((hx - hr_x, hy - hr_y, hx + hr_x, hy + hr_y), fill=p.hair if back else p.skin)
    d.chord((hx - hr_x, hy - hr_y - 1, hx + hr_x, hy + hr_y * 0.6), 180, 360, fill=p.hair)
    if p.long_hair and back:
        d.rectangle((hx - hr_x, hy, hx + hr_x, Y(0.25)), fill=p.hair)


def _draw_bag(d: ImageDraw.ImageDraw, p: Person, f: _Frame, hip: float, arm_end: float, back: bool) -> None:
    """A backpack (body or straps), a handbag or a shoulder bag with its strap."""
    X, Y, h = f.X, f.Y, f.h
    sw, ww = 0.13 * p.width, 0.11 * p.width
    y0 = Y(0.16)
    if p.bag == "backpack":
        if back:
            d.rectangle((X(-0.09, Y(0.2)), Y(0.2), X(0.09, Y(0.44)), Y(0.44)), fill=p.bag_colour)
        else:
            for side in (-1, 1):
                xa = side * 0.07
                d.line(
                    (X(xa, y0), y0, X(xa, Y(0.36)), Y(0.36)), fill=p.bag_colour, width=max(1, int(0.02 * h))
                )
    elif p.bag in ("handbag", "shoulder"):
        side = 1 if p.bag_right != back else -1
        x = side * (sw + 0.05) if p.bag == "handbag" else side * (ww + 0.02)
        top = arm_end - 0.02 if p.bag == "handbag" else hip - 0.06
        if p.bag == "shoulder":
            d.line(
                (X(-side * sw, y0), y0, X(x, Y(top)), Y(top)), fill=p.bag_colour, width=max(1, int(0.015 * h))
            )
        d.rectangle(
            (X(x - 0.05, Y(top)), Y(top), X(x + 0.05, Y(top + 0.11)), Y(top + 0.11)), fill=p.bag_colour
        )


def draw_person(
    img: Image.Image, p: Person, rng: np.random.Generator, cx: float, feet: float, h: float, back: bool
) -> None:
    """Draw `p` on `img` standing at (cx, feet) with height `h` (pixels), seen from the back or front.

    The random draws keep this order: lean, stride, arm end, then one arm swing per side.
    """
    d = ImageDraw.Draw(img)
    f = _Frame(cx, feet, h, rng.uniform(-0.06, 0.06))
    hip, knee = 1.0 - p.legs - 0.04, 1.0 - p.legs / 2 - 0.04
    _draw_legs(d, p, f, rng.uniform(-0.07, 0.07), hip, knee)
    _draw_torso(img, d, p, f, hip, back)
    arm_end = 0.47 + rng.uniform(-0.03, 0.03)
    _draw_arms(d, p, rng, f, arm_end)
    _draw_head(d, p, f, back)
    _draw_bag(d, p, f, hip, arm_end, back)


def render(
    person: Person | None,
    camera: Camera,
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    partial: bool = False,
    occluder: Person | None = None,
) -> np.ndarray:
    """One (height, width, 3) uint8 image of `person` (None: background only) seen by `camera`.

    `partial` crops hard (a bad detection: junk / distractor); `occluder` draws part of another
    person in front at one side.
    """
    ch, cw = 2 * height, 2 * width  # draw at 2x, then box-resize down (anti-aliasing)
    bg = camera.background
    oy, ox = int(rng.integers(0, bg.shape[0] - ch + 1)), int(rng.integers(0, bg.shape[1] - cw + 1))
    img = Image.fromarray(np.ascontiguousarray(bg[oy : oy + ch, ox : ox + cw]))
    scale = camera.scale * rng.uniform(0.93, 1.07)
    ph = scale * ch
    feet = ch * (0.5 + scale / 2) + rng.uniform(-0.03, 0.03) * ch
    if person is not None:
        back = bool(rng.random() < camera.back_view)
        draw_person(img, person, rng, cw / 2 + rng.uniform(-0.07, 0.07) * cw, feet, ph, back)
    if occluder is not None:
        side = 1 if rng.random() < 0.5 else -1
        ocx = cw / 2 + side * rng.uniform(0.45, 0.65) * cw
        draw_person(
            img, occluder, rng, ocx, feet + rng.uniform(0, 0.1) * ch, ph * 1.05, bool(rng.random() < 0.5)
        )
    if rng.random() < 0.2:
        _draw_occluding_object(img, rng)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.resize((width, height), Image.Resampling.BOX, box=_crop_box(rng, camera.crop, cw, ch, partial))
    return _camera_look(img, camera, rng)


def _draw_occluding_object(img: Image.Image, rng: np.random.Generator) -> None:
    """A plain-coloured block over the bottom or a side of `img`."""
    cw, ch = img.size
    d, f = ImageDraw.Draw(img), tuple(int(v) for v in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
        d.rectangle((0, ch * rng.uniform(0.7, 0.85), cw, ch), fill=f)
    else:
        x = cw * rng.uniform(0.0, 0.25)
        d.rectangle((0, ch * rng.uniform(0.0, 0.5), x + cw * 0.12, ch), fill=f)


def _crop_box(
    rng: np.random.Generator, crop: float, cw: int, ch: int, partial: bool
) -> tuple[float, float, float, float]:
    """The detection box in a (cw, ch) drawing: margins up to `crop` of each side; `partial` keeps only an
    upper or lower part (a bad detection)."""
    m = rng.uniform(0.0, crop, 4) * (cw, ch, cw, ch)
    box = (m[0], m[1], cw - m[2], ch - m[3])
    if partial:
        cut = rng.uniform(0.35, 0.6) * ch
        box = (m[0], m[1], cw - m[2], m[1] + cut) if rng.random() < 0.5 else (m[0], ch - cut, cw - m[2], ch)
    return box


def _camera_look(img: Image.Image, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """The camera's blur, colour cast and sensor noise applied to `img`, as uint8."""
    radius = camera.blur + rng.uniform(0.0, 0.4)
    if radius > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    arr = np.asarray(img, dtype=np.float32) @ camera.matrix.T + camera.offset
    arr += rng.normal(0.0, camera.noise, arr.shape)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)
