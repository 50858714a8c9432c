"""A synthetic operating room: the camera rig, the furniture, the people, and how they look.

World frame: z up, floor at z = 0, the OR table in the middle along x. Ceiling cameras look
down at the table from the room's corners, as in MVOR. Every function takes the random
generator it draws from, so a seed fixes the whole scene.

Not for: casting rays (see `synth.render`) or writing files (see `synth.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import invert_rigid, look_at
from orpose.synth.body import Person, rot_x, rot_y, rot_z, sample_person
from orpose.synth.render import KIND_BOX, KIND_CAPSULE, KIND_ROOM, RenderResult, SceneGeometry

__all__ = [
    "CameraRig",
    "Furniture",
    "Scene",
    "sample_rig",
    "sample_scene",
    "shade",
    "sensor_holes",
    "ROOM_LO",
    "ROOM_HI",
]

ROOM_LO = np.array([-3000.0, -2500.0, 0.0])
ROOM_HI = np.array([3000.0, 2500.0, 3000.0])
_ROOM_COLORS = {
    0: (190, 200, 185),
    1: (190, 200, 185),
    2: (200, 205, 195),
    3: (200, 205, 195),
    4: (115, 125, 110),
    5: (225, 225, 225),
}
_LIGHT = np.array([0.0, 0.0, 2900.0])


@dataclass(frozen=True)
class CameraRig:
    """A ceiling color camera, with a registered depth image and an optional calibrated depth camera."""

    camera_id: str
    color: Intrinsics
    world_to_color: np.ndarray  # 4x4
    depth: Intrinsics | None  # the second, calibrated depth camera's grid
    depth_to_color: np.ndarray | None  # 4x4, mm

    def world_to_depth(self) -> np.ndarray:
        return invert_rigid(self.depth_to_color) @ self.world_to_color


@dataclass(frozen=True)
class Furniture:
    lo: np.ndarray  # (B, 3)
    hi: np.ndarray  # (B, 3)
    colors: tuple  # B BGR tuples


@dataclass(frozen=True)
class Scene:
    people: tuple[Person, ...]
    furniture: Furniture
    geometry: SceneGeometry
    capsule_owner: np.ndarray  # (P,) person index of each capsule
    capsule_part: tuple[str, ...]  # (P,) part name of each capsule


def sample_rig(
    rng: np.random.Generator, num_cameras: int, width: int, height: int, calibrated_depth: bool
) -> list[CameraRig]:
    """Cameras in distinct upper corners, looking at the table. Fixed for a whole recording."""
    corners = [(-2500, -2000), (2500, 2000), (2500, -2000), (-2500, 2000)]
    if num_cameras > len(corners):
        raise ValueError(f"at most {len(corners)} cameras, got {num_cameras}")
    focal = 0.9 * width
    color = Intrinsics(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)
    rigs = []
    for k in range(num_cameras):
        x, y = corners[k]
        eye = np.array([x + rng.uniform(-150, 150), y + rng.uniform(-150, 150), rng.uniform(2450, 2700)])
        target = np.array([rng.uniform(-300, 300), rng.uniform(-200, 200), rng.uniform(700, 900)])
        depth_intr, depth_to_color = None, None
        if calibrated_depth:
            # A Kinect-v2-like depth camera beside the color one: other grid, other focal, small offset.
            dw, dh = int(round(width * 0.8)), int(round(height * 0.883))
            depth_intr = Intrinsics(dw, dh, 0.57 * dw * 1.25, 0.57 * dw * 1.25, (dw - 1) / 2 + 3.0, (dh - 1) / 2 - 2.0)
            depth_to_color = np.eye(4)
            depth_to_color[:3, :3] = (
                rot_y(rng.uniform(-1, 1)) @ rot_x(rng.uniform(-1, 1)) @ rot_z(rng.uniform(-0.5, 0.5))
            )
            depth_to_color[:3, 3] = [rng.uniform(45, 55), rng.uniform(-3, 3), rng.uniform(-2, 2)]
        rigs.append(CameraRig(f"cam{k + 1}", color, look_at(eye, target), depth_intr, depth_to_color))
    return rigs


def _sample_furniture(rng: np.random.Generator) -> Furniture:
    boxes = [
        ((-1000, -300, 720), (1000, 300, 900), (110, 140, 60)),  # OR table top with a green drape
        ((-200, -150, 0), (200, 150, 720), (120, 120, 120)),  # table column
    ]
    # A trolley and an anaesthesia machine by the walls, clear of where people stand.
    tx, ty = rng.choice([-1, 1]) * rng.uniform(2100, 2500), rng.uniform(-1500, 1500)
    boxes.append(((tx - 300, ty - 250, 0), (tx + 300, ty + 250, 950), (180, 180, 175)))
    ax, ay = rng.uniform(-1500, 1500), rng.choice([-1, 1]) * rng.uniform(1900, 2100)
    boxes.append(((ax - 350, ay - 300, 0), (ax + 350, ay + 300, 1500), (150, 160, 170)))
    lo = np.array([b[0] for b in boxes], dtype=np.float64)
    hi = np.array([b[1] for b in boxes], dtype=np.float64)
    return Furniture(lo, hi, tuple(b[2] for b in boxes))


def _place_people(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, float]]:
    """Standing spots around the table, at least 600 mm apart, mostly facing the table."""
    spots: list[tuple[np.ndarray, float]] = []
    for _ in range(200):
        if len(spots) == count:
            break
        if rng.random() < 0.75:
            position = np.array([rng.uniform(-1300, 1300), rng.choice([-1, 1]) * (300 + rng.uniform(250, 650))])
        else:
            position = np.array([rng.choice([-1, 1]) * (1000 + rng.uniform(250, 600)), rng.uniform(-450, 450)])
        if any(np.linalg.norm(position - other) < 600 for other, _ in spots):
            continue
        nearest = np.clip(position, [-1000, -300], [1000, 300])
        towards = nearest - position
        yaw = np.degrees(np.arctan2(-towards[0], towards[1])) + rng.normal(0, 25)
        if rng.random() < 0.2:
            yaw = rng.uniform(0, 360)
        spots.append((position, float(yaw)))
    return spots


def sample_scene(rng: np.random.Generator, max_people: int) -> Scene:
    """One instant: 1..max_people people around the table and the furniture."""
    furniture = _sample_furniture(rng)
    people = tuple(
        sample_person(rng, pos, yaw) for pos, yaw in _place_people(rng, int(rng.integers(1, max_people + 1)))
    )
    capsules = [(c, k) for k, person in enumerate(people) for c in person.capsules]
    geometry = SceneGeometry(
        capsule_a=np.array([c.a for c, _ in capsules]).reshape(-1, 3),
        capsule_b=np.array([c.b for c, _ in capsules]).reshape(-1, 3),
        capsule_radius=np.array([c.radius for c, _ in capsules]),
        box_lo=furniture.lo,
        box_hi=furniture.hi,
        room_lo=ROOM_LO,
        room_hi=ROOM_HI,
    )
    return Scene(
        people,
        furniture,
        geometry,
        np.array([k for _, k in capsules], dtype=np.int32),
        tuple(c.part for c, _ in capsules),
    )


def _part_colors(scene: Scene, result: RenderResult, mask: np.ndarray) -> np.ndarray:
    """Base colors of the body pixels in `mask`: face, mask and cap on the head, a badge on the
    left chest, so that front, back, left and right can be told apart as on real staff."""
    index = result.index[mask]
    points = result.points[mask]
    colors = np.zeros((len(index), 3))
    owners = scene.capsule_owner[index]
    parts = np.array(scene.capsule_part)[index]
    for k, person in enumerate(scene.people):
        c = person.colors
        mine = owners == k
        simple = {
            "neck": c["skin"],
            "ear": c["skin"],
            "eye": c["eye"],
            "nose": c["mask"],
            "upper_arm": c["scrub"],
            "forearm": c["skin"],
            "hand": c["glove"],
            "leg": c["pants"],
            "foot": c["shoe"],
            "torso": c["scrub"],
        }
        for part, color in simple.items():
            colors[mine & (parts == part)] = color
        head = mine & (parts == "head")
        if head.any():
            local = (points[head] - person.head_center) @ person.head_rotation  # world -> head frame
            local /= np.linalg.norm(local, axis=-1, keepdims=True)
            face = (local[:, 1] > 0.25) & (local[:, 2] < 0.45)
            lower = face & (local[:, 2] < -0.05)
            head_colors = np.tile(np.array(c["cap"], dtype=np.float64), (head.sum(), 1))
            head_colors[face] = c["skin"]
            head_colors[lower] = c["mask"]
            colors[head] = head_colors
        torso = mine & (parts == "torso")
        if torso.any():
            local = (points[torso] - person.thorax) @ person.torso_rotation
            badge = (
                (local[:, 1] > 30)
                & (local[:, 0] > -150)
                & (local[:, 0] < -70)
                & (local[:, 2] > -230)
                & (local[:, 2] < -140)
            )
            vneck = (local[:, 1] > 30) & (local[:, 2] > -110) & (np.abs(local[:, 0]) < (local[:, 2] + 110) * 0.45)
            torso_colors = colors[torso]
            torso_colors[vneck] = c["skin"]
            torso_colors[badge] = (245, 245, 245)
            colors[torso] = torso_colors
    return colors


def shade(scene: Scene, result: RenderResult) -> np.ndarray:
    """Lambert-shaded BGR image (uint8) of a render."""
    base = np.zeros(result.depth.shape + (3,))
    room = result.kind == KIND_ROOM
    for face, color in _ROOM_COLORS.items():
        base[room & (result.index == face)] = color
    boxes = result.kind == KIND_BOX
    for i, color in enumerate(scene.furniture.colors):
        base[boxes & (result.index == i)] = color
    body = result.kind == KIND_CAPSULE
    if body.any():
        base[body] = _part_colors(scene, result, body)
    to_light = _LIGHT - result.points
    to_light /= np.linalg.norm(to_light, axis=-1, keepdims=True)
    lambert = np.clip(np.einsum("...i,...i->...", result.normals, to_light), 0.0, 1.0)
    intensity = 0.4 + 0.6 * lambert
    return np.clip(base * intensity[..., None], 0, 255).round().astype(np.uint8)


def sensor_holes(depth_mm: np.ndarray, rng: np.random.Generator, edge_drop: float = 0.5, blobs: int = 2) -> np.ndarray:
    """Where a real depth sensor would read nothing: at depth edges (shadowing) and in a few
    random blobs (specular or absorbing surfaces). Returns a boolean mask of holes."""
    jump = np.zeros(depth_mm.shape, dtype=bool)
    jump[:, 1:] |= np.abs(np.diff(depth_mm, axis=1)) > 80
    jump[1:, :] |= np.abs(np.diff(depth_mm, axis=0)) > 80
    holes = jump & (rng.random(depth_mm.shape) < edge_drop)
    h, w = depth_mm.shape
    v, u = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(0, blobs + 1))):
        cu, cv, ru, rv = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 12), rng.uniform(3, 12)
        holes |= ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1
    return holes
