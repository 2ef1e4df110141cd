"""Start perception_node + decoder_node on a camera topic.

    ros2 launch vljepa_ros perception.launch.py image_topic:=/camera/image_raw
    ros2 launch vljepa_ros perception.launch.py image_topic:=/cam/image_raw \\
        image_transport:=compressed namespace:=robot1 use_sim_time:=true

Arguments (all strings, as on the command line):
  image_topic      camera topic; with image_transport:=compressed the node
                   reads <image_topic>/compressed (the image_transport convention)
  image_transport  raw | compressed (perception_node parameter of the same name)
  params_file      YAML with both nodes' parameters (default: the installed
                   share/vljepa_ros/config/perception.yaml)
  model_path       model directory; "" = the model shipped with the package
  namespace        pushes a ROS namespace on both nodes ("" = none); topics are
                   relative, so the whole pipeline moves with it
  use_sim_time     true to follow /clock (bag replay, simulation)

Graph: perception_node subscribes to the relative topics "image" (raw) and
"image/compressed"; both are remapped here. decoder_node reads "embedding" and
"action", remapped to perception_node's private topics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vljepa_ros"


def generate_launch_description():
    image_topic = LaunchConfiguration("image_topic")
    params_file = LaunchConfiguration("params_file")
    model_path = LaunchConfiguration("model_path")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    image_transport = LaunchConfiguration("image_transport")

    arguments = [
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="Camera topic (sensor_msgs/Image); <image_topic>/compressed is used "
                        "with image_transport:=compressed."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "perception.yaml"]),
            description="YAML file with the parameters of perception_node and decoder_node."),
        DeclareLaunchArgument(
            "model_path", default_value="",
            description="Model directory; empty = the model shipped with vljepa_ros."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="ROS namespace pushed on both nodes; empty = none."),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false", "True", "False"],
            description="Use /clock (simulation, bag replay) instead of the system clock."),
        DeclareLaunchArgument(
            "image_transport", default_value="raw", choices=["raw", "compressed"],
            description="Subscribe to raw sensor_msgs/Image or to sensor_msgs/CompressedImage."),
    ]

    # Typed values: "" must stay a string and "true" must become a bool.
    common = {
        "model_path": ParameterValue(model_path, value_type=str),
        "use_sim_time": ParameterValue(use_sim_time, value_type=bool),
    }

    perception = Node(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        output="screen",
        emulate_tty=True,
        parameters=[params_file, common,
                    {"image_transport": ParameterValue(image_transport, value_type=str)}],
        remappings=[
            ("image", image_topic),
            ("image/compressed", [image_topic, "/compressed"]),
        ],
    )
    decoder = Node(
        package=PACKAGE,
        executable="decoder_node",
        name="decoder_node",
        output="screen",
        emulate_tty=True,
        parameters=[params_file, common],
        remappings=[
            ("embedding", "perception_node/embedding"),
            ("action", "perception_node/action"),
        ],
    )

    group = GroupAction([
        PushRosNamespace(
            namespace=namespace,
            condition=IfCondition(PythonExpression(["'", namespace, "' != ''"])),
        ),
        perception,
        decoder,
    ])
    return LaunchDescription(arguments + [group])
