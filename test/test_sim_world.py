import os
import tempfile

os.environ.setdefault("MESA_SHADER_CACHE_DIR", tempfile.mkdtemp(prefix="mesa_"))

import numpy as np
import pytest

from vljepa_ros.sim.world import SceneParams, TabletopWorld, cell_xy, step_cell

S = 96


@pytest.fixture(scope="module")
def world():
    w = TabletopWorld()
    yield w
    w.close()


def red_mask(img):
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 100) & (g < 0.45 * r) & (b < 0.45 * r)


def test_render_shape_and_determinism(world):
    world.reset()
    world.set_params(SceneParams())
    world.place("red", "cube", (0, 0))
    a = world.render(S, S)
    assert a.shape == (S, S, 3) and a.dtype == np.uint8
    world.place("blue", "ball", (2, 1))
    world.set_lamp(False)
    world.reset()
    world.set_params(SceneParams())
    world.place("red", "cube", (0, 0))
    b = world.render(S, S)
    assert np.array_equal(a, b)


def test_lamp_off_is_darker(world):
    world.reset()
    world.place("green", "ball", (1, 0))
    on = world.render(S, S).astype(float).mean()
    world.set_lamp(False)
    off = world.render(S, S).astype(float).mean()
    world.set_lamp(True)
    assert on - off > 25, (on, off)
    assert world.render(S, S).astype(float).mean() == pytest.approx(on)


def test_removed_object_not_rendered(world):
    world.reset()
    world.place("red", "cube", (1, 0))
    m = red_mask(world.render(S, S))
    assert m.sum() > 20
    world.remove("red", "cube")
    img = world.render(S, S)
    assert red_mask(img).sum() == 0
    world.reset()
    empty = world.render(S, S)
    assert np.array_equal(img, empty)


def test_object_left_cell_is_left_in_image(world):
    world.reset()
    world.place("red", "cube", (1, 0))
    x_center = np.nonzero(red_mask(world.render(S, S)))[1].mean()
    world.place("red", "cube", (0, 0))
    x_left = np.nonzero(red_mask(world.render(S, S)))[1].mean()
    assert x_left < x_center - 5


def test_grid_and_ik(world):
    assert step_cell((0, 0), "left") is None
    assert step_cell((0, 0), "back") == (0, 1)
    assert step_cell((1, 1), "forward") == (1, 0)
    target = [*cell_xy((2, 0)), 0.03]
    world.solve_ik(target, world.q_home, iters=200)
    assert np.linalg.norm(world.tip_pos() - target) < 5e-3
    world.set_arm_home()
