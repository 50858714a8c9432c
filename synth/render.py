"""Exact ray casting of capsules, boxes and a room: depth (Z, mm), the object seen, surface normal.

One ray per pixel centre (pixel (v, u) looks through image point (u, v), the convention of
`frames.geometry.project`). The ray direction has camera-z = 1, so the ray parameter t of a hit
*is* its depth Z. Capsules are intersected only inside the image rectangle their bounding box
projects to, which keeps a 640x480 frame with a few people well under a second in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import invert_rigid, project

__all__ = ["SceneGeometry", "RenderResult", "render", "KIND_ROOM", "KIND_BOX", "KIND_CAPSULE"]

KIND_ROOM, KIND_BOX, KIND_CAPSULE = 0, 1, 2


@dataclass(frozen=True)
class SceneGeometry:
    """Everything a ray can hit, in world coordinates (mm)."""

    capsule_a: np.ndarray  # (P, 3) segment starts
    capsule_b: np.ndarray  # (P, 3) segment ends (== start for a sphere)
    capsule_radius: np.ndarray  # (P,)
    box_lo: np.ndarray  # (B, 3) axis-aligned furniture boxes
    box_hi: np.ndarray  # (B, 3)
    room_lo: np.ndarray  # (3,) the room is the inside of this box
    room_hi: np.ndarray  # (3,)


@dataclass
class RenderResult:
    depth: np.ndarray  # (H, W) float64 Z in mm
    kind: np.ndarray  # (H, W) int8: KIND_ROOM, KIND_BOX or KIND_CAPSULE
    index: np.ndarray  # (H, W) int32: room face (0..5), box index or capsule index
    points: np.ndarray  # (H, W, 3) world hit points
    normals: np.ndarray  # (H, W, 3) world unit normals, facing the camera


def _rays(intr: Intrinsics, world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.arange(intr.width, dtype=np.float64), np.arange(intr.height, dtype=np.float64))
    d_cam = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    rotation = world_to_camera[:3, :3]
    d_world = d_cam @ rotation  # R^T d for row vectors
    origin = invert_rigid(world_to_camera)[:3, 3]
    return origin, d_world


def _ray_capsule(origin: np.ndarray, dirs: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Nearest positive t of rays origin + t*dirs with the capsule (a, b, r); inf where missed."""
    ba = b - a
    oa = origin - a
    baba = ba @ ba
    rdrd = np.einsum("...i,...i->...", dirs, dirs)
    t = np.full(dirs.shape[:-1], np.inf)
    if baba > 1e-12:
        bard = dirs @ ba
        baoa = ba @ oa
        rdoa = dirs @ oa
        qa = baba * rdrd - bard * bard
        qb = baba * rdoa - baoa * bard
        qc = baba * (oa @ oa) - baoa * baoa - r * r * baba
        disc = qb * qb - qa * qc
        with np.errstate(invalid="ignore", divide="ignore"):
            t_body = (-qb - np.sqrt(disc)) / qa
        along = baoa + t_body * bard
        body_hit = (disc >= 0) & (qa > 1e-12) & (along > 0) & (along < baba) & (t_body > 0)
        t = np.where(body_hit, t_body, t)
    for center in (a, b) if baba > 1e-12 else (a,):
        oc = origin - center
        sb = dirs @ oc
        sc = oc @ oc - r * r
        disc = sb * sb - rdrd * sc
        with np.errstate(invalid="ignore"):
            t_cap = (-sb - np.sqrt(disc)) / rdrd
        cap_hit = (disc >= 0) & (t_cap > 0)
        t = np.where(cap_hit & (t_cap < t), t_cap, t)
    return t


def _capsule_rect(a, b, r, intr: Intrinsics, world_to_camera) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (u0, u1, v0, v1) that contains the capsule's image, or None if unseen."""
    lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = corners @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    if np.all(cam[:, 2] <= 0):
        return None
    if np.any(cam[:, 2] <= 1.0):
        return 0, intr.width, 0, intr.height
    uv = project(cam, Intrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy))
    u0, v0 = np.floor(uv.min(axis=0)).astype(int)
    u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 1
    u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, intr.width), min(v1, intr.height)
    if u0 >= u1 or v0 >= v1:
        return None
    return u0, u1, v0, v1


def render(scene: SceneGeometry, intr: Intrinsics, world_to_camera: np.ndarray) -> RenderResult:
    """Cast one ray per pixel; the nearest surface wins."""
    origin, dirs = _rays(intr, world_to_camera)
    h, w = intr.height, intr.width

    # The room: rays start inside, so the hit is the exit through the nearest wall, floor or ceiling.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lo = (scene.room_lo - origin) / dirs
        t_hi = (scene.room_hi - origin) / dirs
    t_exit_axes = np.where(np.isnan(np.maximum(t_lo, t_hi)), np.inf, np.maximum(t_lo, t_hi))
    axis = np.argmin(t_exit_axes, axis=-1)
    depth = np.take_along_axis(t_exit_axes, axis[..., None], axis=-1)[..., 0]
    upper = np.take_along_axis(t_hi >= t_lo, axis[..., None], axis=-1)[..., 0]
    kind = np.full((h, w), KIND_ROOM, dtype=np.int8)
    index = (axis * 2 + upper).astype(np.int32)  # 0/1 = x lo/hi wall, 2/3 = y walls, 4 floor, 5 ceiling

    for i, (lo, hi) in enumerate(zip(scene.box_lo, scene.box_hi)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - origin) / dirs
            t2 = (hi - origin) / dirs
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < depth)
        depth = np.where(hit, t_near, depth)
        kind[hit] = KIND_BOX
        index[hit] = i

    for i in range(len(scene.capsule_radius)):
        a, b, r = scene.capsule_a[i], scene.capsule_b[i], float(scene.capsule_radius[i])
        rect = _capsule_rect(a, b, r, intr, world_to_camera)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        t = _ray_capsule(origin, dirs[v0:v1, u0:u1], a, b, r)
        window = depth[v0:v1, u0:u1]
        hit = t < window
        window[hit] = t[hit]
        kind[v0:v1, u0:u1][hit] = KIND_CAPSULE
        index[v0:v1, u0:u1][hit] = i

    points = origin + dirs * depth[..., None]
    normals = _normals(scene, kind, index, points, origin)
    return RenderResult(depth=depth, kind=kind, index=index, points=points, normals=normals)


def _normals(scene: SceneGeometry, kind, index, points, origin) -> np.ndarray:
    normals = np.zeros_like(points)
    room = kind == KIND_ROOM
    axis, upper = index[room] // 2, index[room] % 2
    n = np.zeros((room.sum(), 3))
    n[np.arange(len(axis)), axis] = np.where(upper == 1, -1.0, 1.0)  # inward
    normals[room] = n

    boxes = kind == KIND_BOX
    if boxes.any():
        p = points[boxes]
        lo, hi = scene.box_lo[index[boxes]], scene.box_hi[index[boxes]]
        distances = np.concatenate([np.abs(p - lo), np.abs(p - hi)], axis=-1)
        face = np.argmin(distances, axis=-1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), face % 3] = np.where(face < 3, -1.0, 1.0)
        normals[boxes] = n

    caps = kind == KIND_CAPSULE
    if caps.any():
        p = points[caps]
        i = index[caps]
        a, b = scene.capsule_a[i], scene.capsule_b[i]
        ba = b - a
        baba = np.einsum("ij,ij->i", ba, ba)
        s = np.clip(np.einsum("ij,ij->i", p - a, ba) / np.where(baba > 0, baba, 1.0), 0.0, 1.0)
        closest = a + ba * s[:, None]
        n = p - closest
        normals[caps] = n / np.linalg.norm(n, axis=-1, keepdims=True)
    return normals
