"""Simulated camera -> perception -> semantic events, on simulated time.

    ros2 launch vljepa_ros sim_demo.launch.py episode_seed:=3 fps:=15.0 image_size:=224

sim_camera_node plays a scripted MuJoCo episode on /camera/image_raw and
publishes /clock (time_source sim); perception.launch.py is included with
use_sim_time:=true, so every stamp downstream is episode time. The ground
truth of every frame is on /camera/ground_truth (JSON) for comparison with
/semantic_events. The camera starts its episode only once perception_node has
subscribed (it subscribes after loading and warming up its model, 6-8 s), so
no frame of the episode is lost; a bad argument (image_size:=abc) stops the
launch naming it, and a node that exits stops the launch. Without the ROS
launch tools, use the in-process bringup documented in the README (same
nodes, same YAML).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vljepa_ros"


def generate_launch_description():
    episode_seed = LaunchConfiguration("episode_seed")
    fps = LaunchConfiguration("fps")
    image_size = LaunchConfiguration("image_size")

    arguments = [
        DeclareLaunchArgument("episode_seed", default_value="0",
                              description="Seed of the scripted episode (test split)."),
        DeclareLaunchArgument("fps", default_value="15.0",
                              description="Camera rate in frames/s, (0, 60]."),
        DeclareLaunchArgument("image_size", default_value="224",
                              description="Square image size in pixels, [32, 1024]."),
    ]

    camera = OpaqueFunction(function=_camera, args=[episode_seed, fps, image_size])

    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "perception.launch.py"])),
        launch_arguments={
            "image_topic": "/camera/image_raw",
            "use_sim_time": "true",
        }.items(),
    )
    return LaunchDescription(arguments + [camera, perception])


def _on_exit(event, context):
    from vljepa_ros.ros.launch_support import exit_outcome

    reason = exit_outcome(event.action.name, event.returncode, context.is_shutdown)
    return [Shutdown(reason=reason)] if reason else None


def _camera(context, episode_seed, fps, image_size):
    from vljepa_ros.ros.launch_support import typed_argument

    # typed here so that a bad value names its argument; ranges are the node's
    params = {
        "episode_seed": typed_argument("episode_seed", episode_seed.perform(context), int),
        "fps": typed_argument("fps", fps.perform(context), float),
        "image_size": typed_argument("image_size", image_size.perform(context), int),
        "split": "test",
        "time_source": "sim",
        "wait_for_subscribers": 1,  # perception_node: the episode starts when it listens
    }
    return [Node(
        package=PACKAGE,
        executable="sim_camera_node",
        name="sim_camera",
        output="screen",
        emulate_tty=True,
        parameters=[params],
        on_exit=_on_exit,
    )]
