"""Simulated camera -> perception -> semantic events, on simulated time.

    ros2 launch vljepa_ros sim_demo.launch.py episode_seed:=3 fps:=15.0 image_size:=224

sim_camera_node plays a scripted MuJoCo episode on /camera/image_raw and
publishes /clock (time_source sim); perception.launch.py is included with
use_sim_time:=true, so every stamp downstream is episode time. The ground
truth of every frame is on /camera/ground_truth (JSON) for comparison with
/semantic_events. Without the ROS launch tools, use the in-process bringup
documented in the README (same nodes, same YAML).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
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

    camera = Node(
        package=PACKAGE,
        executable="sim_camera_node",
        name="sim_camera",
        output="screen",
        emulate_tty=True,
        parameters=[{
            "episode_seed": ParameterValue(episode_seed, value_type=int),
            "fps": ParameterValue(fps, value_type=float),
            "image_size": ParameterValue(image_size, value_type=int),
            "split": "test",
            "time_source": "sim",
        }],
    )

    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "perception.launch.py"])),
        launch_arguments={
            "image_topic": "/camera/image_raw",
            "use_sim_time": "true",
        }.items(),
    )
    return LaunchDescription(arguments + [camera, perception])
