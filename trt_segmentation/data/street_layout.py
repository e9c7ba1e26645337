"""Street-scene geometry (data/street_scenes.py renders and writes the scenes): Cityscapes trainIds, the pinhole
camera over a possibly curving street, the canvas every shape is drawn on (picture and labels by the same call, so
labels are exact), and the scene's objects built in metres and drawn far to near. All randomness comes from the
caller's ``numpy.random.Generator``; the layout draws nothing that depends on the resolution."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Cityscapes trainIds (trt_segmentation.palette.CLASS_NAMES order).
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
VOID = 255
#: labelId written for VOID pixels (the only void region drawn is the ego vehicle's bonnet).
VOID_LABEL_ID = 1  # 'ego vehicle' in cityscapesscripts.helpers.labels

Point = tuple[float, float]
Rgb = tuple[int, int, int]


class Canvas:
    """The picture, the label map and a shade map, always drawn together."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.rgb = Image.new("RGB", (width, height), (0, 0, 0))
        self.label = Image.new("L", (width, height), VOID)
        self.shade = Image.new("L", (width, height), 255)  # multiplicative light, 255 = fully lit
        self._rgb, self._label = ImageDraw.Draw(self.rgb), ImageDraw.Draw(self.label)
        self._shade = ImageDraw.Draw(self.shade)

    def polygon(self, points: list[Point], cls: int, colour: Rgb) -> None:
        if len(points) >= 3:
            self._rgb.polygon(points, fill=colour)
            self._label.polygon(points, fill=cls)

    def paint(self, points: list[Point], colour: Rgb) -> None:
        """Picture only (markings, windows, lamps): the label stays what is underneath."""
        if len(points) >= 3:
            self._rgb.polygon(points, fill=colour)

    def ellipse(self, box: tuple[float, float, float, float], cls: int | None, colour: Rgb) -> None:
        x0, y0, x1, y1 = box
        if x1 - x0 < 0.5 or y1 - y0 < 0.5:
            return
        self._rgb.ellipse((x0, y0, x1, y1), fill=colour)
        if cls is not None:
            self._label.ellipse((x0, y0, x1, y1), fill=cls)

    def line(self, points: list[Point], width: float, cls: int, colour: Rgb) -> None:
        w = max(1, int(round(width)))
        self._rgb.line(points, fill=colour, width=w)
        self._label.line(points, fill=cls, width=w)

    def shadow(self, points: list[Point], level: int) -> None:
        if len(points) >= 3:
            self._shade.polygon(points, fill=level)


@dataclass
class Camera:
    height: int
    width: int
    f: float
    cx: float
    cy: float
    cam_h: float
    curve: float  # lateral road offset = curve * z**2 (metres)

    def off(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.curve * np.asarray(z) ** 2 if isinstance(z, np.ndarray) else self.curve * z * z

    def project(self, x: float, y: float, z: float) -> Point:
        z = max(z, 0.3)
        return (self.cx + self.f * (x + self.curve * z * z) / z, self.cy + self.f * (self.cam_h - y) / z)

    def poly(self, pts: list[tuple[float, float, float]]) -> list[Point]:
        return [self.project(x, y, z) for x, y, z in pts]

    def scale(self, z: float) -> float:
        """Pixels per metre at depth ``z``."""
        return self.f / max(z, 0.3)


@dataclass
class SceneObject:
    depth: float  # nearest distance: objects are drawn in decreasing depth
    draw: Callable[[Canvas, Camera], None]


def jitter(rng: np.random.Generator, colour: Rgb, amount: int) -> Rgb:
    c = np.asarray(colour) + rng.integers(-amount, amount + 1, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def shade_rgb(colour: Rgb, k: float) -> Rgb:
    return tuple(int(min(255, max(0, c * k))) for c in colour)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- scene layout
@dataclass
class Street:
    road_left: float  # x of the left road edge (negative)
    road_right: float
    lane_width: float
    walk_left: float  # sidewalk widths
    walk_right: float
    grass_left: float  # grass strip between sidewalk and buildings (0 = none)
    grass_right: float
    tram: bool


def ground_strip(cam: Camera, x0: float, x1: float, z0: float = 1.0, z1: float = 600.0) -> list[Point]:
    zs = np.geomspace(z0, z1, 36)
    left = [cam.project(x0, 0.0, float(z)) for z in zs]
    right = [cam.project(x1, 0.0, float(z)) for z in zs[::-1]]
    return left + right


def _box_faces(cam: Camera, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> dict[str, list[Point]]:
    """Visible faces of an axis-aligned box (rear = nearest face, z = z0)."""
    faces: dict[str, list[Point]] = {}
    if x0 > 0:
        faces["side"] = cam.poly([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)])
    elif x1 < 0:
        faces["side"] = cam.poly([(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)])
    if y1 < cam.cam_h:
        faces["top"] = cam.poly([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)])
    faces["rear"] = cam.poly([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)])
    return faces


def _wheel(cam: Camera, x: float, z: float, r: float, n: int = 14) -> list[Point]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return cam.poly([(x, r + r * math.sin(t), z + r * math.cos(t)) for t in a])


def _vehicle(rng: np.random.Generator, cls: int, x: float, z: float) -> SceneObject:
    if cls == CAR:
        length, width, height = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)
        palette = [(200, 200, 205), (30, 30, 35), (150, 20, 25), (25, 45, 120), (120, 125, 130), (230, 230, 230),
                   (60, 90, 60), (170, 140, 60)]
        body = jitter(rng, palette[rng.integers(len(palette))], 12)
    elif cls == TRUCK:
        length, width, height = rng.uniform(7.0, 10.0), 2.5, rng.uniform(3.2, 3.8)
        body = jitter(rng, [(225, 225, 220), (200, 205, 210), (60, 110, 60)][rng.integers(3)], 10)
    elif cls == BUS:
        length, width, height = rng.uniform(11.0, 13.0), 2.55, rng.uniform(3.0, 3.3)
        body = jitter(rng, [(200, 30, 30), (30, 90, 180), (240, 160, 20)][rng.integers(3)], 10)
    else:  # TRAIN: a tram
        length, width, height = rng.uniform(24.0, 32.0), 2.4, 3.4
        body = jitter(rng, (235, 215, 120), 8)
    windows = jitter(rng, (35, 45, 60), 8)

    def draw(cv: Canvas, cam: Camera) -> None:
        x0, x1, z0, z1 = x - width / 2, x + width / 2, z, z + length
        # soft shadow on the road under the vehicle
        cv.shadow(cam.poly([(x0 - 0.2, 0, z0 - 0.3), (x1 + 0.2, 0, z0 - 0.3), (x1 + 0.2, 0, z1), (x0 - 0.2, 0, z1)]), 120)
        if cls == CAR:
            body_y0, body_y1 = 0.2, 0.62 * height
            faces = _box_faces(cam, x0, x1, body_y0, body_y1, z0, z1)
            cabin = _box_faces(cam, x0 + 0.1, x1 - 0.1, body_y1, height, z0 + 0.25 * length, z0 + 0.8 * length)
            for tx in (x0 + 0.05, x1 - 0.3):  # tyres visible under the rear bumper
                cv.polygon(cam.poly([(tx, 0, z0 + 0.6), (tx + 0.25, 0, z0 + 0.6), (tx + 0.25, 0.35, z0 + 0.6), (tx, 0.35, z0 + 0.6)]), cls, (20, 20, 20))
            if "side" in faces:
                cv.polygon(faces["side"], cls, shade_rgb(body, 0.75))
                side_x = x0 if x0 > 0 else x1
                for wz in (z0 + 0.18 * length, z0 + 0.8 * length):
                    cv.polygon(_wheel(cam, side_x, wz, 0.32), cls, (18, 18, 18))
            if "top" in faces:
                cv.polygon(faces["top"], cls, shade_rgb(body, 1.1))
            for name in ("side", "top", "rear"):
                if name in cabin:
                    cv.polygon(cabin[name], cls, shade_rgb(body, 0.9 if name != "top" else 1.1))
            # windows: inner part of the cabin's rear and side faces
            ry0, ry1 = body_y1 + 0.05, height - 0.08
            cz = z0 + 0.25 * length
            cv.paint(cam.poly([(x0 + 0.25, ry0, cz), (x1 - 0.25, ry0, cz), (x1 - 0.3, ry1, cz), (x0 + 0.3, ry1, cz)]), windows)
            if "side" in cabin:
                sx = x0 + 0.1 if x0 > 0 else x1 - 0.1
                cv.paint(cam.poly([(sx, ry0, cz + 0.2), (sx, ry0, z0 + 0.78 * length), (sx, ry1, z0 + 0.75 * length), (sx, ry1, cz + 0.3)]), windows)
            cv.polygon(faces["rear"], cls, body)
            for lx in (x0 + 0.1, x1 - 0.45):  # tail lights and number plate (the plate is car in trainIds)
                cv.paint(cam.poly([(lx, 0.75, z0), (lx + 0.35, 0.75, z0), (lx + 0.35, 0.9, z0), (lx, 0.9, z0)]), (200, 20, 20))
            cv.paint(cam.poly([(x - 0.26, 0.35, z0), (x + 0.26, 0.35, z0), (x + 0.26, 0.47, z0), (x - 0.26, 0.47, z0)]), (235, 235, 235))
            return
        faces = _box_faces(cam, x0, x1, 0.35, height, z0, z1)
        if "side" in faces:
            cv.polygon(faces["side"], cls, shade_rgb(body, 0.78))
            side_x = x0 if x0 > 0 else x1
            for wz in (z0 + 0.15 * length, z0 + 0.85 * length):
                cv.polygon(_wheel(cam, side_x, wz, 0.5), cls, (18, 18, 18))
            if cls in (BUS, TRAIN):  # window band along the side
                zz = np.arange(z0 + 0.8, z1 - 0.8, 1.6 if cls == BUS else 2.2)
                for a in zz:
                    if cam.scale(a) * 1.2 < 1.5:
                        break
                    cv.paint(cam.poly([(side_x, 1.4, a), (side_x, 1.4, a + 1.2), (side_x, height - 0.45, a + 1.2), (side_x, height - 0.45, a)]), windows)
            if cls == TRAIN:
                cv.paint(cam.poly([(side_x, 0.8, z0), (side_x, 0.8, z1), (side_x, 1.1, z1), (side_x, 1.1, z0)]), (190, 30, 30))
        if "top" in faces:
            cv.polygon(faces["top"], cls, shade_rgb(body, 1.1))
        for tx in (x0 + 0.1, x1 - 0.45):
            cv.polygon(cam.poly([(tx, 0, z0 + 0.9), (tx + 0.35, 0, z0 + 0.9), (tx + 0.35, 0.45, z0 + 0.9), (tx, 0.45, z0 + 0.9)]), cls, (20, 20, 20))
        cv.polygon(faces["rear"], cls, body)
        if cls == TRAIN:  # pantograph (part of the train)
            px = [cam.project(x - 0.5, height + 0.9, z0 + 6), cam.project(x, height, z0 + 5), cam.project(x + 0.5, height + 0.9, z0 + 6)]
            cv.line(px, 0.08 * cam.scale(z0 + 5), cls, (40, 40, 40))
            cv.paint(cam.poly([(x0 + 0.2, 0.8, z0), (x1 - 0.2, 0.8, z0), (x1 - 0.2, 1.1, z0), (x0 + 0.2, 1.1, z0)]), (190, 30, 30))
        if cls in (BUS, TRAIN):  # big rear window and destination display
            cv.paint(cam.poly([(x0 + 0.2, 1.5, z0), (x1 - 0.2, 1.5, z0), (x1 - 0.2, height - 0.5, z0), (x0 + 0.2, height - 0.5, z0)]), windows)
            cv.paint(cam.poly([(x0 + 0.4, height - 0.4, z0), (x1 - 0.4, height - 0.4, z0), (x1 - 0.4, height - 0.12, z0), (x0 + 0.4, height - 0.12, z0)]), (255, 150, 0))
        else:  # truck: cargo door lines
            cv.paint(cam.poly([(x - 0.03, 0.5, z0), (x + 0.03, 0.5, z0), (x + 0.03, height - 0.1, z0), (x - 0.03, height - 0.1, z0)]), shade_rgb(body, 0.6))
        for lx in (x0 + 0.1, x1 - 0.4):
            cv.paint(cam.poly([(lx, 0.6, z0), (lx + 0.3, 0.6, z0), (lx + 0.3, 0.8, z0), (lx, 0.8, z0)]), (210, 25, 25))

    return SceneObject(z, draw)


def _person(rng: np.random.Generator, x: float, z: float, cls: int = PERSON, seat: float = 0.0,
            height: float | None = None) -> Callable[[Canvas, Camera], None]:
    """A standing (or, with ``seat`` > 0, seated) figure in the plane of constant depth ``z``."""
    h = height if height is not None else rng.uniform(1.6, 1.9)
    shirts = [(200, 40, 40), (40, 60, 150), (230, 230, 230), (40, 40, 40), (60, 130, 70), (220, 180, 40), (150, 80, 150)]
    shirt = jitter(rng, shirts[rng.integers(len(shirts))], 15)
    trousers = jitter(rng, [(40, 40, 60), (70, 70, 75), (30, 50, 100), (110, 90, 70)][rng.integers(4)], 10)
    skin = jitter(rng, [(230, 190, 160), (190, 140, 100), (120, 80, 55)][rng.integers(3)], 10)
    stride = rng.uniform(-0.18, 0.18)
    if cls == RIDER:
        shirt = jitter(rng, [(250, 120, 0), (230, 230, 40), (250, 60, 130)][rng.integers(3)], 10)  # hi-vis jackets

    def draw(cv: Canvas, cam: Camera) -> None:
        def p(dx: float, y: float) -> Point:
            return cam.project(x + dx, y, z)

        foot, hip, shoulder, head = seat, seat + 0.52 * h, seat + 0.82 * h, seat + 0.93 * h
        if seat > 0:  # seated: thighs forward, shins down to the pedal
            cv.polygon([p(-0.12, hip), p(0.1, hip), p(0.45, hip - 0.25), p(0.45, hip - 0.6), p(0.3, hip - 0.6), p(0.3, hip - 0.35), p(-0.12, hip - 0.12)], cls, trousers)
        else:
            cv.shadow(cam.poly([(x - 0.3, 0, z - 0.2), (x + 0.4, 0, z - 0.2), (x + 0.4, 0, z + 0.4), (x - 0.3, 0, z + 0.4)]), 150)
            cv.polygon([p(-0.16, hip), p(-0.01, hip), p(-0.03 + stride, foot), p(-0.17 + stride, foot)], cls, trousers)
            cv.polygon([p(0.01, hip), p(0.16, hip), p(0.17 - stride, foot), p(0.03 - stride, foot)], cls, shade_rgb(trousers, 0.85))
        cv.polygon([p(-0.2, shoulder), p(0.2, shoulder), p(0.17, hip - 0.03), p(-0.17, hip - 0.03)], cls, shirt)
        arm = 0.32 if seat > 0 else 0.05
        cv.polygon([p(0.17, shoulder), p(0.24, shoulder - 0.02), p(0.24 + arm, hip + 0.05), p(0.17 + arm, hip + 0.02)], cls, shade_rgb(shirt, 0.85))
        cv.polygon([p(-0.24, shoulder - 0.02), p(-0.17, shoulder), p(-0.17 - stride * 0.3, hip), p(-0.24 - stride * 0.3, hip)], cls, shade_rgb(shirt, 0.85))
        neck = p(0.0, shoulder)
        hx, hy = p(0.0, head)
        r = 0.11 * cam.scale(z)
        cv.ellipse((neck[0] - r * 0.5, neck[1] - r * 0.6, neck[0] + r * 0.5, neck[1] + r * 0.2), cls, skin)
        cv.ellipse((hx - r, hy - r * 1.2, hx + r, hy + r * 1.1), cls, skin)
        if cls == RIDER:  # helmet
            cv.ellipse((hx - r * 1.15, hy - r * 1.45, hx + r * 1.15, hy + r * 0.2), cls, (25, 25, 25))
        else:  # hair
            cv.ellipse((hx - r, hy - r * 1.25, hx + r, hy - r * 0.1), cls, jitter(rng, (50, 35, 25), 20))

    return draw


def _two_wheeler(rng: np.random.Generator, cls: int, x: float, z: float, ridden: bool) -> SceneObject:
    """Bicycle or motorcycle in side view (crossing the street, or parked across the sidewalk)."""
    direction = 1.0 if rng.random() < 0.5 else -1.0
    frame = jitter(rng, [(30, 30, 30), (180, 30, 30), (30, 80, 170), (200, 200, 200)][rng.integers(4)], 10)
    rider = _person(rng, x - 0.1 * direction, z, RIDER, seat=0.95 if cls == BICYCLE else 0.75, height=1.6) if ridden else None

    def draw(cv: Canvas, cam: Camera) -> None:
        s = cam.scale(z)

        def p(dx: float, y: float) -> Point:
            return cam.project(x + dx * direction, y, z)

        if cls == BICYCLE:
            r, base = 0.34, 0.55
            for wx in (-base, base):
                cx, cy = p(wx, r)
                rr = r * s
                cv._rgb.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=(25, 25, 25), width=max(1, int(0.07 * s)))
                cv._label.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=cls, width=max(1, int(0.07 * s)))
            w = 0.06 * s
            cv.line([p(-base, r), p(-0.1, r + 0.55), p(0.4, r + 0.55), p(base, r)], w, cls, frame)
            cv.line([p(-base, r), p(0.0, r), p(-0.1, r + 0.55)], w, cls, frame)
            cv.line([p(0.0, r), p(0.4, r + 0.55), p(0.45, r + 0.75), p(0.3, r + 0.8)], w, cls, frame)
            cv.line([p(-0.15, r + 0.62), p(-0.15, r + 0.55)], w, cls, frame)
            cv.polygon([p(-0.28, r + 0.62), p(-0.02, r + 0.62), p(-0.02, r + 0.68), p(-0.28, r + 0.68)], cls, (20, 20, 20))
        else:
            r, base = 0.3, 0.7
            cv.shadow(cam.poly([(x - 1.0, 0, z - 0.3), (x + 1.0, 0, z - 0.3), (x + 1.0, 0, z + 0.3), (x - 1.0, 0, z + 0.3)]), 140)
            for wx in (-base, base):
                cx, cy = p(wx, r)
                rr = r * s
                cv.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), cls, (20, 20, 20))
                cv.ellipse((cx - rr * 0.45, cy - rr * 0.45, cx + rr * 0.45, cy + rr * 0.45), cls, (150, 150, 155))
            cv.polygon([p(-0.6, 0.55), p(-0.2, 0.75), p(0.35, 0.95), p(0.6, 0.85), p(0.7, 0.45), p(0.2, 0.3), p(-0.3, 0.35)], cls, frame)
            cv.polygon([p(-0.2, 0.3), p(0.25, 0.3), p(0.25, 0.6), p(-0.2, 0.6)], cls, (70, 70, 75))
            cv.polygon([p(-0.55, 0.8), p(0.05, 0.85), p(0.05, 0.93), p(-0.6, 0.9)], cls, (25, 25, 25))
            cv.line([p(0.55, 0.9), p(0.6, 1.15), p(0.45, 1.2)], 0.05 * s, cls, (40, 40, 40))
        if rider is not None:
            rider(cv, cam)

    return SceneObject(z, draw)


def _pole(rng: np.random.Generator, x: float, z: float, kind: str) -> SceneObject:
    """Street lamp, traffic light (on the pole or on a mast arm over the road) or traffic sign."""
    metal = jitter(rng, (120, 125, 130), 15)
    sign_kind = rng.integers(4)
    lit = rng.integers(3)
    side = 1.0 if x > 0 else -1.0

    def draw(cv: Canvas, cam: Camera) -> None:
        width = 0.16 if kind != "sign" else 0.1
        top = {"lamp": 7.0, "light": 5.2, "sign": 2.7}[kind]
        cv.shadow(cam.poly([(x, 0, z), (x + 3.0, 0, z + 1.5), (x + 3.0, 0, z + 1.7), (x, 0, z + 0.2)]), 150)
        cv.polygon(cam.poly([(x - width / 2, 0, z), (x + width / 2, 0, z), (x + width / 2, top, z), (x - width / 2, top, z)]), POLE, metal)
        cv.paint(cam.poly([(x - width / 2, 0, z), (x - width / 6, 0, z), (x - width / 6, top, z), (x - width / 2, top, z)]), shade_rgb(metal, 0.7))
        if kind == "lamp":
            arm_end = x - side * 1.8
            cv.polygon(cam.poly([(x, top - 0.12, z), (arm_end, top - 0.12, z), (arm_end, top, z), (x, top, z)]), POLE, metal)
            cv.polygon(cam.poly([(arm_end - 0.35, top - 0.25, z), (arm_end + 0.35, top - 0.25, z), (arm_end + 0.35, top - 0.05, z), (arm_end - 0.35, top - 0.05, z)]), POLE, (90, 90, 95))
        elif kind == "light":
            arm = rng_arm
            if arm:  # mast arm over the road with a hanging light
                end = x - side * arm
                cv.polygon(cam.poly([(x, top - 0.15, z), (end, top - 0.15, z), (end, top, z), (x, top, z)]), POLE, metal)
                hx = end
            else:
                hx = x
            y0 = top - 1.15 if arm else top - 1.0
            cv.polygon(cam.poly([(hx - 0.2, y0, z), (hx + 0.2, y0, z), (hx + 0.2, y0 + 1.0, z), (hx - 0.2, y0 + 1.0, z)]), LIGHT, (35, 40, 35))
            s = cam.scale(z)
            for i, colour in enumerate(((230, 30, 20), (240, 170, 20), (40, 220, 90))):
                cx, cy = cam.project(hx, y0 + 0.83 - i * 0.32, z)
                rr = 0.11 * s
                cv.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), None, colour if i == lit else shade_rgb(colour, 0.3))
        else:  # sign on a post
            cx, cy = cam.project(x, top - 0.25, z)
            rr = 0.38 * cam.scale(z)
            if sign_kind == 0:  # round: red ring, white centre
                cv.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), SIGN, (200, 20, 25))
                cv.ellipse((cx - rr * 0.72, cy - rr * 0.72, cx + rr * 0.72, cy + rr * 0.72), None, (240, 240, 240))
            elif sign_kind == 1:  # triangle
                cv.polygon([(cx, cy - rr), (cx + rr, cy + rr * 0.75), (cx - rr, cy + rr * 0.75)], SIGN, (200, 20, 25))
                cv.paint([(cx, cy - rr * 0.5), (cx + rr * 0.6, cy + rr * 0.5), (cx - rr * 0.6, cy + rr * 0.5)], (245, 245, 240))
            elif sign_kind == 2:  # blue square
                cv.polygon([(cx - rr, cy - rr), (cx + rr, cy - rr), (cx + rr, cy + rr), (cx - rr, cy + rr)], SIGN, (20, 70, 170))
                cv.paint([(cx - rr * 0.2, cy - rr * 0.6), (cx + rr * 0.2, cy - rr * 0.6), (cx + rr * 0.2, cy + rr * 0.6), (cx - rr * 0.2, cy + rr * 0.6)], (240, 240, 240))
            else:  # yellow diamond
                cv.polygon([(cx, cy - rr), (cx + rr, cy), (cx, cy + rr), (cx - rr, cy)], SIGN, (230, 200, 20))
                cv.paint([(cx, cy - rr * 0.6), (cx + rr * 0.6, cy), (cx, cy + rr * 0.6), (cx - rr * 0.6, cy)], (250, 225, 60))

    rng_arm = float(rng.uniform(2.5, 5.0)) if kind == "light" and rng.random() < 0.5 else 0.0
    return SceneObject(z, draw)


def _tree(rng: np.random.Generator, x: float, z: float) -> SceneObject:
    trunk_h, crown_r = rng.uniform(1.8, 3.0), rng.uniform(1.4, 2.6)
    blobs = [(rng.uniform(-0.6, 0.6) * crown_r, rng.uniform(-0.4, 0.5) * crown_r, rng.uniform(0.55, 0.85) * crown_r) for _ in range(6)]
    greens = [jitter(rng, (60, 100, 30), 18) for _ in blobs]

    def draw(cv: Canvas, cam: Camera) -> None:
        cv.shadow(_ground_ellipse(cam, x + 1.0, z + 0.5, crown_r * 1.1, crown_r * 0.8), 140)
        cv.polygon(cam.poly([(x - 0.15, 0, z), (x + 0.15, 0, z), (x + 0.12, trunk_h + crown_r * 0.5, z), (x - 0.12, trunk_h + crown_r * 0.5, z)]), VEGETATION, (85, 65, 45))
        s = cam.scale(z)
        for (bx, by, br), g in zip(blobs, greens):
            cx, cy = cam.project(x + bx, trunk_h + crown_r + by, z)
            cv.ellipse((cx - br * s, cy - br * s, cx + br * s, cy + br * s), VEGETATION, g)

    return SceneObject(z, draw)


def _ground_ellipse(cam: Camera, x: float, z: float, rx: float, rz: float) -> list[Point]:
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    return cam.poly([(x + rx * math.cos(t), 0.0, max(0.5, z + rz * math.sin(t))) for t in a])


def _barrier(rng: np.random.Generator, cls: int, x: float, z0: float, z1: float, h: float) -> SceneObject:
    """Wall or fence: a vertical strip along the street at lateral position ``x``."""
    colour = jitter(rng, (165, 160, 150) if cls == WALL else (140, 100, 60), 12)
    if cls == FENCE and rng.random() < 0.4:
        colour = jitter(rng, (70, 110, 80), 10)  # green metal fence

    def draw(cv: Canvas, cam: Camera) -> None:
        cv.polygon(cam.poly([(x, 0, z0), (x, 0, z1), (x, h, z1), (x, h, z0)]), cls, colour)
        if cls == WALL:
            cv.paint(cam.poly([(x, h - 0.15, z0), (x, h - 0.15, z1), (x, h, z1), (x, h, z0)]), shade_rgb(colour, 1.15))
            for y in np.arange(0.5, h - 0.15, 0.5):
                cv.paint(cam.poly([(x, y, z0), (x, y, z1), (x, y + 0.04, z1), (x, y + 0.04, z0)]), shade_rgb(colour, 0.8))
        else:  # vertical boards / bars
            for zz in np.arange(z0, z1, 0.25):
                if cam.scale(zz) * 0.06 < 0.7:
                    break
                cv.paint(cam.poly([(x, 0, zz), (x, 0, zz + 0.06), (x, h, zz + 0.06), (x, h, zz)]), shade_rgb(colour, 0.65))
            cv.paint(cam.poly([(x, h * 0.75, z0), (x, h * 0.75, z1), (x, h * 0.75 + 0.08, z1), (x, h * 0.75 + 0.08, z0)]), shade_rgb(colour, 0.6))

    return SceneObject(z0, draw)


def _building_row(rng: np.random.Generator, side: float, x: float, z_start: float, z_end: float) -> list[SceneObject]:
    objs: list[SceneObject] = []
    z = z_start
    facades = [(150, 75, 60), (200, 185, 150), (130, 130, 135), (220, 215, 200), (170, 120, 90), (110, 100, 95), (190, 160, 120)]
    while z < z_end:
        length = float(rng.uniform(10, 28))
        height = float(rng.uniform(8, 26))
        setback = float(rng.uniform(0, 2.0))
        colour = jitter(rng, facades[rng.integers(len(facades))], 15)
        glass = jitter(rng, [(40, 55, 75), (70, 85, 100), (30, 30, 35)][rng.integers(3)], 10)
        floor_h, win_w = float(rng.uniform(2.8, 3.5)), float(rng.uniform(1.0, 1.8))
        spacing = win_w + float(rng.uniform(0.8, 2.0))
        shop = rng.random() < 0.5
        objs.append(SceneObject(z + 1000.0, _facade(side, x + side * setback, z, z + length, height, colour, glass, floor_h, win_w, spacing, shop)))
        z += length + (float(rng.uniform(2, 8)) if rng.random() < 0.2 else 0.0)
    return objs


def _facade(side: float, x: float, z0: float, z1: float, h: float, colour: Rgb, glass: Rgb, floor_h: float,
            win_w: float, spacing: float, shop: bool) -> Callable[[Canvas, Camera], None]:
    def draw(cv: Canvas, cam: Camera) -> None:
        # end wall towards the camera (visible where this building stands out from the previous one)
        deep = x + side * 14.0
        cv.polygon(cam.poly([(x, 0, z0), (deep, 0, z0), (deep, h, z0), (x, h, z0)]), BUILDING, shade_rgb(colour, 0.7))
        cv.polygon(cam.poly([(x, 0, z0), (x, 0, z1), (x, h, z1), (x, h, z0)]), BUILDING, colour)
        cv.paint(cam.poly([(x, h - 0.4, z0), (x, h - 0.4, z1), (x, h, z1), (x, h, z0)]), shade_rgb(colour, 0.75))
        first = 1 if shop else 0
        if shop:  # shop windows on the ground floor
            for a in np.arange(z0 + 0.8, z1 - 2.5, 4.0):
                cv.paint(cam.poly([(x, 0.4, a), (x, 0.4, a + 2.8), (x, 2.6, a + 2.8), (x, 2.6, a)]), shade_rgb(glass, 1.3))
        for a in np.arange(z0 + 0.7, z1 - win_w, spacing):
            if cam.scale(a) * win_w * abs(x) / max(a, 1.0) < 1.2:  # foreshortened width under ~1 px: stop
                break
            for fl in range(first, int(h / floor_h)):
                y = fl * floor_h + 0.9
                if y + 1.5 > h - 0.5:
                    break
                cv.paint(cam.poly([(x, y, a), (x, y, a + win_w), (x, y + 1.5, a + win_w), (x, y + 1.5, a)]), glass)

    return draw


def layout(rng: np.random.Generator) -> tuple[Street, list[SceneObject], list[SceneObject]]:
    lanes_left = int(rng.integers(1, 3))
    lane = float(rng.uniform(3.0, 3.6))
    tram = bool(rng.random() < 0.3)
    street = Street(
        road_left=-(lane * (lanes_left - 0.5) + (3.0 if tram else 0.0)), road_right=lane * 0.5 + float(rng.uniform(0.5, 2.5)),
        lane_width=lane, walk_left=float(rng.uniform(2.5, 5.0)), walk_right=float(rng.uniform(2.5, 5.0)),
        grass_left=float(rng.uniform(1.5, 4.0)) if rng.random() < 0.5 else 0.0,
        grass_right=float(rng.uniform(1.5, 4.0)) if rng.random() < 0.5 else 0.0, tram=tram)
    far_objs: list[SceneObject] = []  # buildings (drawn first)
    objs: list[SceneObject] = []
    rl, rr = street.road_left, street.road_right
    edge_l, edge_r = rl - street.walk_left - street.grass_left, rr + street.walk_right + street.grass_right
    for side, edge in ((-1.0, edge_l), (1.0, edge_r)):
        far_objs += _building_row(rng, side, edge, float(rng.uniform(-5, 6)), 160.0)
    # the end of the street
    far_objs.append(SceneObject(5000.0, _far_skyline(rng, float(rng.uniform(140, 200)))))
    # walls / fences in front of the buildings (or of the grass)
    for side, edge in ((-1.0, edge_l), (1.0, edge_r)):
        for _ in range(int(rng.integers(0, 3))):
            cls = WALL if rng.random() < 0.5 else FENCE
            z0 = float(rng.uniform(4, 50))
            objs.append(_barrier(rng, cls, edge - side * float(rng.uniform(0.0, 0.6)), z0, z0 + float(rng.uniform(5, 20)), float(rng.uniform(1.0, 2.2))))
    # trees along the sidewalks and in grass strips
    for side, x_curb, walk in ((-1.0, rl, street.walk_left), (1.0, rr, street.walk_right)):
        z = float(rng.uniform(5, 20))
        while z < 90:
            if rng.random() < 0.6:
                objs.append(_tree(rng, x_curb + side * float(rng.uniform(0.8, walk + 1.0)), z))
            z += float(rng.uniform(7, 18))
    # poles: lamps, traffic lights (at least one), signs (at least one)
    kinds = ["light", "sign"] + ["lamp", "sign", "light", "lamp", "sign"][: int(rng.integers(2, 6))]
    for kind in kinds:
        side = -1.0 if rng.random() < 0.5 else 1.0
        x = (rl - 0.5) if side < 0 else (rr + 0.5)
        objs.append(_pole(rng, x, float(rng.uniform(7, 45)), kind))
    # people on the sidewalks, a few crossing
    for _ in range(int(rng.integers(2, 8))):
        side = -1.0 if rng.random() < 0.5 else 1.0
        walk = street.walk_left if side < 0 else street.walk_right
        x = (rl - float(rng.uniform(0.4, walk - 0.3))) if side < 0 else (rr + float(rng.uniform(0.4, walk - 0.3)))
        z = float(rng.uniform(6, 40))
        objs.append(SceneObject(z, _person(rng, x, z)))
    if rng.random() < 0.4:
        z = float(rng.uniform(9, 25))
        for _ in range(int(rng.integers(1, 4))):
            x = float(rng.uniform(rl + 0.5, rr - 0.5))
            objs.append(SceneObject(z, _person(rng, x, z + float(rng.uniform(-0.5, 0.5)))))
    # riders (at least one) and parked two-wheelers
    for _ in range(int(rng.integers(1, 3))):
        cls = BICYCLE if rng.random() < 0.55 else MOTORCYCLE
        objs.append(_two_wheeler(rng, cls, float(rng.uniform(rl + 1.0, rr - 0.3)), float(rng.uniform(7, 30)), ridden=True))
    for _ in range(int(rng.integers(0, 3))):
        cls = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        side = -1.0 if rng.random() < 0.5 else 1.0
        objs.append(_two_wheeler(rng, cls, (rl - 1.0) if side < 0 else (rr + 1.0), float(rng.uniform(6, 25)), ridden=False))
    # traffic: vehicles in the lanes, parked cars at the right kerb, maybe a tram in the middle
    lane_centres = [-i * lane for i in range(lanes_left)]
    for centre in lane_centres:
        z = float(rng.uniform(8, 20))
        while z < 90:
            r = rng.random()
            cls = CAR if r < 0.62 else TRUCK if r < 0.82 else BUS
            objs.append(_vehicle(rng, cls, centre + float(rng.uniform(-0.3, 0.3)), z))
            z += float(rng.uniform(14, 40))
    z = float(rng.uniform(5, 12))
    while z < 70:
        if rng.random() < 0.55:
            objs.append(_vehicle(rng, CAR, rr - 1.05, z))
        z += float(rng.uniform(5.5, 9))
    if tram:
        objs.append(_vehicle(rng, TRAIN, rl + 1.6, float(rng.uniform(10, 35))))
    return street, far_objs, objs


def _far_skyline(rng: np.random.Generator, z: float) -> Callable[[Canvas, Camera], None]:
    blocks = []
    x = -120.0
    while x < 120:
        w = float(rng.uniform(8, 25))
        blocks.append((x, x + w, float(rng.uniform(10, 40)), jitter(rng, (150, 145, 140), 25)))
        x += w

    def draw(cv: Canvas, cam: Camera) -> None:
        for x0, x1, h, colour in blocks:
            cv.polygon(cam.poly([(x0, 0, z), (x1, 0, z), (x1, h, z), (x0, h, z)]), BUILDING, colour)

    return draw

