"""Articulated bodies for the synthetic scenes: pose sampling and the capsules that make the body.

Body frame: x = the person's right, y = forward, z = up, millimetres. A pose is a set of joint
angles drawn from a few mixtures that people in an operating room actually show (arms at rest,
reaching to the table, hands held up in front as sterile staff do, arms raised; standing or
stepping; leaning over the table; head turned). The 17 COCO joints come from forward kinematics;
the Human3.6M joints follow from `joints.coco_to_h36m_positions`.

Not for: rendering (see `synth.render`) or placing people in a room (see `synth.scene`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Person", "Capsule", "sample_person", "rot_x", "rot_y", "rot_z", "JOINT_RADIUS_MM"]

DOWN = np.array([0.0, 0.0, -1.0])


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# How deep each COCO joint lies under the visible surface (mm): the radius of the limb around it,
# with the face joints on the surface. Visibility tests and depth checks use it.
JOINT_RADIUS_MM = np.array([10, 10, 10, 15, 15, 95, 95, 50, 50, 40, 40, 95, 95, 65, 65, 50, 50], dtype=np.float64)


@dataclass(frozen=True)
class Capsule:
    """A segment a-b with a radius; a == b makes a sphere. `part` selects the surface pattern."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    part: str  # head, neck, eye, nose, ear, torso, upper_arm, forearm, hand, leg, foot


@dataclass(frozen=True)
class Person:
    """One posed person in world coordinates (mm)."""

    joints: np.ndarray  # (17, 3) COCO joints
    capsules: tuple[Capsule, ...]
    head_center: np.ndarray  # (3,)
    head_rotation: np.ndarray  # (3, 3) head frame -> world (x right, y forward, z up)
    torso_rotation: np.ndarray  # (3, 3) torso frame -> world
    thorax: np.ndarray  # (3,) base of the neck
    colors: dict  # part -> BGR base color


_SCRUBS = [(95, 140, 60), (150, 110, 40), (130, 120, 30), (90, 60, 30), (120, 70, 110), (60, 110, 170)]
_SKIN = [(150, 180, 225), (120, 155, 200), (95, 125, 170), (60, 85, 120), (170, 200, 235)]
_CAPS = [(170, 120, 60), (60, 150, 200), (200, 200, 200), (90, 60, 140), (40, 90, 160)]


def _arm_angles(rng: np.random.Generator) -> tuple[float, float, float]:
    """(flexion, abduction, elbow) in degrees from a mixture of OR arm poses."""
    kind = rng.choice(["rest", "reach", "sterile", "raised"], p=[0.3, 0.35, 0.25, 0.1])
    if kind == "rest":
        return rng.uniform(-10, 20), rng.uniform(5, 20), rng.uniform(5, 30)
    if kind == "reach":
        return rng.uniform(40, 90), rng.uniform(-10, 25), rng.uniform(10, 60)
    if kind == "sterile":
        return rng.uniform(10, 40), rng.uniform(5, 25), rng.uniform(80, 120)
    return rng.uniform(100, 160), rng.uniform(0, 40), rng.uniform(0, 40)


def _leg_angles(rng: np.random.Generator, stepping: bool, front: bool) -> tuple[float, float, float]:
    """(hip flexion, abduction, knee) in degrees."""
    if stepping:
        hip = rng.uniform(15, 35) if front else rng.uniform(-20, -5)
        return hip, rng.uniform(0, 8), rng.uniform(5, 30)
    return rng.uniform(-5, 12), rng.uniform(0, 8), rng.uniform(0, 15)


def _body_capsules(
    joints: np.ndarray, feet: list, pelvis, thorax, head_center, head_radius: float, head, torso, scale: float
) -> list[Capsule]:
    """The capsules that render a person: head, trunk, limbs, hands, feet and the face's features."""
    capsules = [
        Capsule(head_center, head_center, head_radius, "head"),
        Capsule(thorax, head_center - head @ np.array([0, 0, 40]), 55 * scale, "neck"),
        Capsule(pelvis, thorax - torso @ np.array([0, 0, 40]), 115 * scale, "torso"),
    ]
    for side in (-1, 1):
        capsules.append(
            Capsule(
                pelvis + torso @ np.array([side * 80 * scale, 0, 40]),
                thorax + torso @ np.array([side * 110 * scale, 0, -70 * scale]),
                95 * scale,
                "torso",
            )
        )
    for a, b, r, part in (
        (5, 7, 50, "upper_arm"),
        (7, 9, 40, "forearm"),
        (6, 8, 50, "upper_arm"),
        (8, 10, 40, "forearm"),
    ):
        capsules.append(Capsule(joints[a], joints[b], r * scale, part))
    for wrist_i, elbow_i in ((9, 7), (10, 8)):
        direction = joints[wrist_i] - joints[elbow_i]
        direction /= np.linalg.norm(direction)
        capsules.append(
            Capsule(
                joints[wrist_i] + direction * 70 * scale, joints[wrist_i] + direction * 70 * scale, 45 * scale, "hand"
            )
        )
    for a, b, r in ((11, 13, 75), (13, 15, 55), (12, 14, 75), (14, 16, 55)):
        capsules.append(Capsule(joints[a], joints[b], r * scale, "leg"))
    for ankle_i, foot in zip((15, 16), feet):
        capsules.append(Capsule(joints[ankle_i], foot, 45 * scale, "foot"))
    capsules.append(
        Capsule(
            joints[0] - head @ np.array([0, 14, 0]) * scale,
            joints[0] - head @ np.array([0, 14, 0]) * scale,
            18 * scale,
            "nose",
        )
    )
    for eye_i in (1, 2):
        center = head_center + (joints[eye_i] - head_center) * 0.93
        capsules.append(Capsule(center, center, 13 * scale, "eye"))
    for ear_i in (3, 4):
        center = head_center + (joints[ear_i] - head_center) * 0.9
        capsules.append(Capsule(center, center, 22 * scale, "ear"))

    return capsules


def _outfit(rng: np.random.Generator, masked: bool) -> dict:
    """The colours of scrubs, skin, cap, mask, gloves and shoes (the draws in this order, after the pose's)."""
    scrub = _SCRUBS[rng.integers(len(_SCRUBS))]
    skin = _SKIN[rng.integers(len(_SKIN))]
    colors = {
        "scrub": scrub,
        "skin": skin,
        "cap": _CAPS[rng.integers(len(_CAPS))],
        "mask": (215, 200, 150) if masked else skin,
        "glove": (200, 215, 225) if rng.random() < 0.6 else skin,
        "shoe": (60, 60, 60) if rng.random() < 0.5 else (230, 230, 230),
        "eye": (40, 30, 30),
        "pants": tuple(int(c * 0.8) for c in scrub),
    }
    return colors


def sample_person(
    rng: np.random.Generator, position_xy: np.ndarray, yaw_deg: float, *, masked: bool | None = None
) -> Person:
    """A person standing at `position_xy` on the floor (z = 0), facing `yaw_deg` (0 = +y)."""
    scale = rng.uniform(0.92, 1.08)
    lean = rng.choice([rng.uniform(0, 10), rng.uniform(10, 35)], p=[0.6, 0.4])
    twist = rng.uniform(-20, 20)
    head_yaw, head_pitch = rng.uniform(-70, 70), rng.uniform(-35, 15)
    stepping = rng.random() < 0.3
    front_leg = rng.integers(2)

    body_to_world = rot_z(yaw_deg)
    torso = body_to_world @ rot_z(twist) @ rot_x(-lean)
    head = torso @ rot_z(head_yaw) @ rot_x(head_pitch)

    pelvis = np.zeros(3)
    hip_half, thigh, shin = 90 * scale, 430 * scale, 420 * scale
    spine, shoulder_half, upper_arm, forearm = 480 * scale, 170 * scale, 290 * scale, 260 * scale

    joints = np.zeros((17, 3))
    # Legs hang from the pelvis in the (untwisted) body frame; side = +1 right, -1 left.
    feet = []
    for side, hip_i, knee_i, ankle_i in ((-1, 11, 13, 15), (1, 12, 14, 16)):
        flex, abd, knee = _leg_angles(rng, stepping, front=(side > 0) == bool(front_leg))
        spread = rot_y(-side * abd)
        hip = pelvis + body_to_world @ np.array([side * hip_half, 0, 0])
        knee_p = hip + body_to_world @ spread @ rot_x(flex) @ DOWN * thigh
        ankle = knee_p + body_to_world @ spread @ rot_x(flex - knee) @ DOWN * shin
        joints[hip_i], joints[knee_i], joints[ankle_i] = hip, knee_p, ankle
        feet.append(ankle + body_to_world @ np.array([side * 10, 150 * scale, -30]))

    thorax = pelvis + torso @ np.array([0, 0, spine])
    for side, sh_i, el_i, wr_i in ((-1, 5, 7, 9), (1, 6, 8, 10)):
        flex, abd, elbow = _arm_angles(rng)
        spread = rot_y(-side * abd)
        shoulder = thorax + torso @ np.array([side * shoulder_half, 0, -30 * scale])
        elbow_p = shoulder + torso @ spread @ rot_x(flex) @ DOWN * upper_arm
        wrist = elbow_p + torso @ spread @ rot_x(flex + elbow) @ DOWN * forearm
        joints[sh_i], joints[el_i], joints[wr_i] = shoulder, elbow_p, wrist

    head_radius = 100 * scale
    head_center = thorax + torso @ np.array([0, 10, 200 * scale])

    def on_head(direction) -> np.ndarray:
        d = np.asarray(direction, dtype=np.float64)
        return head_center + head @ (d / np.linalg.norm(d)) * head_radius

    joints[0] = on_head([0, 1, -0.15]) + head @ np.array([0, 12, 0]) * scale  # nose tip stands out
    joints[1] = on_head([-0.35, 0.9, 0.22])  # left eye (person's left is -x)
    joints[2] = on_head([0.35, 0.9, 0.22])
    joints[3] = on_head([-1, 0, 0])
    joints[4] = on_head([1, 0, 0])

    # Stand on the floor: the lowest ankle sits 75 mm above it.
    lift = 75 * scale - min(joints[15, 2], joints[16, 2])
    offset = np.array([position_xy[0], position_xy[1], lift])
    joints = joints + offset
    thorax, head_center = thorax + offset, head_center + offset
    pelvis = pelvis + offset
    feet = [f + offset for f in feet]

    capsules = _body_capsules(joints, feet, pelvis, thorax, head_center, head_radius, head, torso, scale)
    if masked is None:
        masked = bool(rng.random() < 0.7)
    colors = _outfit(rng, masked)
    return Person(
        joints=joints,
        capsules=tuple(capsules),
        head_center=head_center,
        head_rotation=head,
        torso_rotation=torso,
        thorax=thorax,
        colors=colors,
    )
