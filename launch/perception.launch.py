"""Start perception_node + decoder_node on a camera topic.

    ros2 launch vljepa_ros perception.launch.py image_topic:=/camera/image_raw
    ros2 launch vljepa_ros perception.launch.py image_topic:=/cam/image_raw \\
        image_transport:=compressed namespace:=robot1 use_sim_time:=true

Arguments (all strings, as on the command line):
  image_topic      camera topic; with image_transport:=compressed the node
                   reads <image_topic>/compressed (the image_transport convention)
  image_transport  raw | compressed (perception_node parameter of the same name);
                   "" = the params file's value (shipped: raw)
  params_file      YAML with both nodes' parameters (default: the installed
                   share/vljepa_ros/config/perception.yaml)
  model_path       model directory; "" = the params file's value (shipped: the
                   model shipped with the package)
  namespace        pushes a ROS namespace on both nodes ("" = none); topics are
                   relative, so the whole pipeline moves with it
  use_sim_time     true to follow /clock (bag replay, simulation)
  memory           true (default) | false: also start memory_node (~/query, ~/latest,
                   ~/stats; docs/memory.md)
  autostart        "" (the params file's value; shipped: true) | true | false:
                   perception_node and decoder_node are managed (lifecycle) nodes;
                   true brings them to active at start-up, false leaves them
                   unconfigured for `ros2 lifecycle set <node> configure` /
                   `activate` or a lifecycle manager

Launch arguments always win over params_file: the file is resolved for each
node (rcl's matching rule, vljepa_ros.ros.launch_support) and each node gets
one file, the file's values then the arguments given. model_path and
image_transport left empty keep the file's values. A node that exits at
start-up (bad parameter, missing model: its FATAL line says which) stops the
launch, with a non-zero exit status.

Graph: perception_node subscribes to the relative topics "image" (raw) and
"image/compressed"; both are remapped here. decoder_node reads "embedding",
"action" and "state_reading", remapped to perception_node's private topics
(launch_support.DECODER_REMAPS).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vljepa_ros"


def generate_launch_description():
    image_topic = LaunchConfiguration("image_topic")
    params_file = LaunchConfiguration("params_file")
    model_path = LaunchConfiguration("model_path")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    image_transport = LaunchConfiguration("image_transport")
    memory = LaunchConfiguration("memory")
    autostart = LaunchConfiguration("autostart")

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
            description="Model directory; empty = params_file's model_path (shipped: the model of vljepa_ros)."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="ROS namespace pushed on both nodes; empty = none."),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false", "True", "False"],
            description="Use /clock (simulation, bag replay) instead of the system clock."),
        DeclareLaunchArgument(
            "image_transport", default_value="",
            description="raw (sensor_msgs/Image) | compressed (CompressedImage); empty = params_file's "
                        "(shipped: raw)."),
        DeclareLaunchArgument(
            "memory", default_value="true", choices=["true", "false", "True", "False"],
            description="Also start memory_node (moments queried by text, kept in memory_dir across restarts)."),
        DeclareLaunchArgument(
            "autostart", default_value="", choices=["", "true", "false", "True", "False"],
            description="Lifecycle: true = perception_node and decoder_node go to active at start-up; false = "
                        "they stay unconfigured (ros2 lifecycle set ...); empty = params_file's (shipped: true)."),
    ]

    group = GroupAction([
        PushRosNamespace(
            namespace=namespace,
            condition=IfCondition(PythonExpression(["'", namespace, "' != ''"])),
        ),
        OpaqueFunction(function=_nodes, args=[image_topic, params_file, model_path, image_transport,
                                              use_sim_time, autostart, memory]),
    ])
    return LaunchDescription(arguments + [group])


def _on_exit(event, context):
    from vljepa_ros.ros.launch_support import exit_outcome

    reason = exit_outcome(event.action.name, event.returncode, context.is_shutdown)
    return [Shutdown(reason=reason)] if reason else None


def _nodes(context, image_topic, params_file, model_path, image_transport, use_sim_time, autostart, memory):
    from vljepa_ros.ros.launch_support import DECODER_REMAPS, node_params_file, pipeline_overrides

    text = [s.perform(context) for s in (image_topic, params_file, model_path, image_transport, use_sim_time,
                                         autostart)]
    image_topic, params_file = text[0], text[1]
    perception_args, decoder_args = pipeline_overrides(*text[2:])
    namespace = context.launch_configurations.get("ros_namespace", "")  # set by PushRosNamespace
    perception = Node(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        output="screen",
        emulate_tty=True,
        parameters=[node_params_file(params_file, namespace, "perception_node", perception_args)],
        remappings=[
            ("image", image_topic),
            ("image/compressed", image_topic.rstrip("/") + "/compressed"),
        ],
        on_exit=_on_exit,
    )
    decoder = Node(
        package=PACKAGE,
        executable="decoder_node",
        name="decoder_node",
        output="screen",
        emulate_tty=True,
        parameters=[node_params_file(params_file, namespace, "decoder_node", decoder_args)],
        remappings=list(DECODER_REMAPS.items()),
        on_exit=_on_exit,
    )
    if memory.perform(context).lower() != "true":
        return [perception, decoder]
    # memory_node: the same model (its Y-encoder embeds the query texts); events come on the
    # relative semantic_events topic, like the decoder's
    memory_node = Node(
        package=PACKAGE,
        executable="memory_node",
        name="memory_node",
        output="screen",
        emulate_tty=True,
        parameters=[node_params_file(params_file, namespace, "memory_node", decoder_args)],
        remappings=[("embedding", DECODER_REMAPS["embedding"])],
        on_exit=_on_exit,
    )
    return [perception, decoder, memory_node]
