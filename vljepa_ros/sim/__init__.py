"""Simulated tabletop world (MuJoCo), scripted episodes and ground-truth captions.

ROS-free. Importing :mod:`vljepa_ros.sim.world` sets MUJOCO_GL=egl unless set.
"""
