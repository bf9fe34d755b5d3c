"""Start fer_node with the shipped parameters (and the shipped FER2013 model unless checkpoint:=
names another).

    ros2 launch fer_ros fer.launch.py image:=/camera/image_raw
    [checkpoint:=/path/model.safetensors] [namespace:=robot1]
    ros2 launch fer_ros fer.launch.py camera:=true [device:=0]      # and publish a V4L2 camera on
    image
    ros2 launch fer_ros fer.launch.py video:=/path/session.mp4       # or a video file, looped

With camera:=true or video:=..., `fer-ros camera` runs beside the node as its camera driver (it
loads the large-image profile itself, as the publisher must).

The Fast DDS profile for camera-sized images is exported to every process this file starts, unless
a profile is already set (a profile you chose is kept; fer_ros.ros.dds's rule); start the camera
driver from the same launch (or export the variable for it) so that the publisher uses it too.
"""

import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from fer_ros.ros.dds import large_image_env, profile_variable
from launch import LaunchDescription


def fer_node(context):
    image = LaunchConfiguration("image").perform(context)
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    parameters = [LaunchConfiguration("params_file").perform(context)]
    if checkpoint:  # otherwise the params file's value stands
        parameters.append({"checkpoint": checkpoint})
    return [
        Node(
            package="fer_ros",
            executable="fer_node",
            name="fer_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            remappings=[("image", image), ("image/compressed", image + "/compressed")],
            output="screen",
        )
    ]


def camera(context):
    """`fer-ros camera` on the node's image topic, when asked for."""
    video = LaunchConfiguration("video").perform(context)
    if not video and LaunchConfiguration("camera").perform(context).lower() not in (
        "true",
        "1",
        "yes",
    ):
        return []
    image = LaunchConfiguration("image").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context).strip("/")
    topic = image if image.startswith("/") or not namespace else f"/{namespace}/{image}"
    source = (
        ["--video", video, "--loop"]
        if video
        else ["--device", LaunchConfiguration("device").perform(context)]
    )
    fer_ros = os.path.join(get_package_prefix("fer_ros"), "lib", "fer_ros", "fer-ros")
    return [
        ExecuteProcess(
            cmd=[fer_ros, "camera", *source, "--topic", topic], name="fer_camera", output="screen"
        )
    ]


def generate_launch_description():
    share = get_package_share_directory("fer_ros")
    env = large_image_env()
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace of the node"
            ),
            DeclareLaunchArgument(
                "image", default_value="/camera/image_raw", description="Camera image topic"
            ),
            DeclareLaunchArgument(
                "checkpoint",
                default_value="",
                description="fer_ros .safetensors checkpoint (default: the params file's, else "
                "the "
                "shipped FER2013 model)",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "fer.yaml"),
                description="Node parameters",
            ),
            # fer_ros.ros.dds owns the rule: a profile or allocator setting already chosen is kept,
            # and the profile goes under the one variable this Fast DDS reads.
            *(
                SetEnvironmentVariable(name, env[name])
                for name in (profile_variable(), "GLIBC_TUNABLES")
            ),
            DeclareLaunchArgument(
                "camera",
                default_value="false",
                description="Also publish a V4L2 camera (device) on the image topic with fer-ros "
                "camera",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="0",
                description="The camera for camera:=true (index or path)",
            ),
            DeclareLaunchArgument(
                "video",
                default_value="",
                description="Publish this video file (looped) on the image topic with fer-ros "
                "camera",
            ),
            OpaqueFunction(function=fer_node),
            OpaqueFunction(function=camera),
        ]
    )
