"""Rendering a street scene (geometry: street_layout.py): ground, objects far to near, the ego vehicle's bonnet, then
sky, textures, light, shadows, vignetting and sensor noise, which change the picture only, never the labels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError
from .street_layout import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FENCE,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    VOID,
    WALL,
    Camera,
    Canvas,
    Street,
    ground_strip,
    jitter,
    layout,
    shade_rgb,
)


def _draw_ground(cv: Canvas, cam: Camera, street: Street, rng: np.random.Generator) -> None:
    H, W = cv.height, cv.width
    rl, rr = street.road_left, street.road_right
    asphalt = jitter(rng, (95, 90, 100), 10)
    paving = jitter(rng, (175, 160, 165), 12)
    grass = jitter(rng, (110, 150, 60), 12)
    # everything below the horizon starts as grass (covers gaps between buildings), above is sky
    cv.polygon([(0, cam.cy), (W, cam.cy), (W, H), (0, H)], TERRAIN, grass)
    edge_l, edge_r = rl - street.walk_left - street.grass_left, rr + street.walk_right + street.grass_right
    cv.polygon(ground_strip(cam, edge_l - 40, edge_r + 40), SIDEWALK, paving)
    if street.grass_left:
        cv.polygon(ground_strip(cam, edge_l, rl - street.walk_left), TERRAIN, grass)
    if street.grass_right:
        cv.polygon(ground_strip(cam, rr + street.walk_right, edge_r), TERRAIN, grass)
    cv.polygon(ground_strip(cam, rl, rr), ROAD, asphalt)
    for x in (rl, rr):  # kerb stones (sidewalk)
        cv.polygon(ground_strip(cam, x - 0.15, x + 0.15), SIDEWALK, shade_rgb(paving, 1.15))
    cv.polygon(ground_strip(cam, rl + 0.15, rr - 0.15), ROAD, asphalt)
    # markings (paint on the road; still road): dashed lane lines and solid edge lines
    white = (225, 225, 225)
    for i in range(1, 8):
        xl = street.lane_width * (0.5 - i)
        if xl <= rl + 1.0:
            break
        z = 2.0
        while z < 200:
            cv.paint(cam.poly([(xl - 0.07, 0, z), (xl + 0.07, 0, z), (xl + 0.07, 0, z + 3), (xl - 0.07, 0, z + 3)]), white)
            z += 9.0
    xr = street.lane_width * 0.5
    cv.paint(ground_strip(cam, xr - 0.06, xr + 0.06, 1.0, 200.0), white)
    if street.tram:  # rails inside the road (painted, labelled road)
        for xx in (rl + 0.9, rl + 2.3):
            cv.paint(ground_strip(cam, xx - 0.04, xx + 0.04, 1.0, 300.0), (150, 150, 155))
    # pedestrian crossing sometimes
    if rng.random() < 0.35:
        zc = float(rng.uniform(10, 25))
        x = rl + 0.3
        while x < rr - 0.5:
            cv.paint(cam.poly([(x, 0, zc), (x + 0.5, 0, zc), (x + 0.5, 0, zc + 3.0), (x, 0, zc + 3.0)]), white)
            x += 1.0


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1): a random grid of about ``cells`` cells across, bilinearly upsampled."""
    gw = max(2, cells)
    gh = max(2, int(round(cells * height / width)))
    grid = rng.random((gh, gw), dtype=np.float32)
    from ..image_codec import pil_filter

    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), pil_filter("BILINEAR")))


# per-class texture amplitudes: fine (per pixel), medium, coarse noise
_FINE = np.zeros(256, np.float32)
_MID = np.zeros(256, np.float32)
_LOW = np.zeros(256, np.float32)
for _cls, (_f, _m, _l) in {
    ROAD: (0.10, 0.06, 0.12), SIDEWALK: (0.08, 0.05, 0.10), BUILDING: (0.06, 0.08, 0.10), WALL: (0.10, 0.10, 0.10),
    FENCE: (0.08, 0.05, 0.05), POLE: (0.04, 0.0, 0.0), VEGETATION: (0.35, 0.55, 0.15), TERRAIN: (0.30, 0.25, 0.20),
    SKY: (0.0, 0.0, 0.0), PERSON: (0.06, 0.0, 0.0), RIDER: (0.06, 0.0, 0.0), CAR: (0.04, 0.02, 0.0),
    TRUCK: (0.05, 0.04, 0.0), BUS: (0.04, 0.02, 0.0), TRAIN: (0.04, 0.02, 0.0), MOTORCYCLE: (0.05, 0.0, 0.0),
    BICYCLE: (0.05, 0.0, 0.0), LIGHT: (0.04, 0.0, 0.0), SIGN: (0.03, 0.0, 0.0), VOID: (0.03, 0.0, 0.0),
}.items():
    _FINE[_cls], _MID[_cls], _LOW[_cls] = _f, _m, _l


def _finish(cv: Canvas, cam: Camera, rng: np.random.Generator, noise_rng: np.random.Generator, sky_kind: int,
            sun: float) -> np.ndarray:
    """Sky, textures, light, shadows, vignetting and sensor noise: the picture only, never the labels.

    Scalars come from ``rng`` (same at every resolution), pixel noise from ``noise_rng``."""
    H, W = cv.height, cv.width
    gain = np.float32(rng.uniform(0.75, 1.15))
    tint = rng.uniform(0.93, 1.07, 3).astype(np.float32)
    sweep_amount = np.float32(rng.uniform(-0.12, 0.12))
    noise_sigma = float(rng.uniform(1.5, 5.0))
    rng = noise_rng
    label = np.asarray(cv.label)
    rgb = np.asarray(cv.rgb).astype(np.float32)
    fine = rng.random((H, W), dtype=np.float32) - 0.5
    mid = _value_noise(rng, H, W, max(8, W // 12)) - 0.5
    low = _value_noise(rng, H, W, 10) - 0.5
    tex = 1.0 + _FINE[label] * fine + _MID[label] * mid + _LOW[label] * low
    rgb *= tex[..., None]
    # sky: vertical gradient plus clouds
    sky = label == SKY
    if sky.any():
        ys = (np.arange(H, dtype=np.float32) / max(cam.cy, 1.0))[:, None, None].clip(0, 1)
        top, bottom = [((70, 120, 190), (170, 200, 230)), ((150, 155, 165), (205, 208, 212)), ((60, 110, 185), (225, 200, 170))][sky_kind]
        grad = np.asarray(top, np.float32) * (1 - ys) + np.asarray(bottom, np.float32) * ys
        clouds = np.clip((_value_noise(rng, H, W, 12) * 0.7 + (mid + 0.5) * 0.3 - 0.55) * 3.0, 0, 1)[..., None]
        sky_rgb = grad * (1 - clouds * 0.8) + np.float32(235) * clouds * 0.8
        rgb = np.where(sky[..., None], np.broadcast_to(sky_rgb, rgb.shape), rgb)
    # sidewalk tiles from ground-plane coordinates (perspective-correct joints)
    walk = label == SIDEWALK
    rows = np.arange(H, dtype=np.float32)[:, None] - cam.cy
    if walk.any():
        z = np.where(rows > 0.5, cam.f * cam.cam_h / np.maximum(rows, 0.5), 1e4)
        x = (np.arange(W, dtype=np.float32)[None, :] - cam.cx) * z / cam.f - cam.curve * z * z
        joints = ((np.mod(x, 0.6) < 0.05) | (np.mod(z, 0.6) < 0.05)) & (z < 40)
        rgb[walk & joints] *= 0.78
    # light: global gain and tint, sun shadows, a horizontal sun gradient, vignetting
    shade = np.asarray(cv.shade).astype(np.float32) / 255.0
    shade = 1.0 - (1.0 - shade) * sun
    xs = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    sweep = 1.0 + sweep_amount * xs
    yy = np.linspace(-1, 1, H, dtype=np.float32)[:, None]
    vignette = 1.0 - 0.18 * (xs * xs * 0.6 + yy * yy * 0.4)
    rgb *= (shade * sweep * vignette * gain)[..., None] * tint
    rgb += rng.normal(0.0, noise_sigma, (H, W, 1)).astype(np.float32)  # luminance noise
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def render_scene(seed: int, height: int = 1024, width: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (RGB uint8 HxWx3, trainIds uint8 HxW with 255 = void, here the ego vehicle's bonnet).

    Deterministic per ``seed``; the same seed gives the same scene at every resolution."""
    if height < 8 or width < 8:
        raise InputError(f"scene size {height}x{width} is too small (at least 8x8)")
    rng = np.random.default_rng(seed)
    cam = Camera(height, width, f=1.05 * min(width, 2 * height), cx=width * float(0.5 + rng.uniform(-0.05, 0.05)),
                  cy=height * float(rng.uniform(0.40, 0.47)), cam_h=float(rng.uniform(1.35, 1.6)),
                  curve=float(rng.uniform(-0.0012, 0.0012)) if rng.random() < 0.6 else 0.0)
    street, far_objs, objs = layout(rng)
    sky_kind = int(rng.integers(3))
    sun = float(rng.uniform(0.3, 1.0))
    hood = rng.random() < 0.7
    hood_top = float(rng.uniform(0.88, 0.95))
    # every random draw for the layout happens above; drawing below only consumes draws of fixed count
    cv = Canvas(height, width)
    cv.polygon([(0, 0), (width, 0), (width, cam.cy + 1), (0, cam.cy + 1)], SKY, (0, 0, 0))
    _draw_ground(cv, cam, street, rng)
    for obj in sorted(far_objs, key=lambda o: -o.depth):
        obj.draw(cv, cam)
    for obj in sorted(objs, key=lambda o: -o.depth):
        obj.draw(cv, cam)
    if hood:  # the ego vehicle's bonnet: void in Cityscapes
        pts = [(x * width, (hood_top + 0.05 * (2 * x - 1) ** 2) * height) for x in np.linspace(0, 1, 24)]
        cv.polygon(pts + [(width, height), (0, height)], VOID, (40, 42, 48))
    image = _finish(cv, cam, rng, np.random.default_rng([seed, 1]), sky_kind, sun)
    return image, np.array(cv.label, dtype=np.uint8)

