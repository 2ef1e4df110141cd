"""rclpy nodes: thin adapters between ROS messages and the core."""
