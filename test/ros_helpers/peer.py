"""A second OS process for the cross-process DDS tests.

    python -m ros_helpers.peer echo  <pkg/msg/Type> <topic>
        subscribe, print the first message received as one JSON line, exit
    python -m ros_helpers.peer serve <pkg/srv/Type> <service>
        serve one request: respond with the fields of `response_json` read
        from stdin, then print the request as one JSON line and exit

The parent drives the other side and compares fields exactly.
"""
import importlib
import json
import sys

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from ros_helpers.convert import fill, to_plain


def load_type(name: str):
    package, kind, type_name = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), type_name)


RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.VOLATILE)


def echo(type_name: str, topic: str) -> int:
    msg_type = load_type(type_name)
    node = rclpy.create_node("vljepa_test_echo")
    received = []
    node.create_subscription(msg_type, topic, received.append, RELIABLE)
    print("READY", flush=True)
    while rclpy.ok() and not received:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(to_plain(received[0])), flush=True)
    node.destroy_node()
    return 0


def serve(type_name: str, service: str) -> int:
    srv_type = load_type(type_name)
    response_fields = json.loads(sys.stdin.readline())
    node = rclpy.create_node("vljepa_test_server")
    requests = []

    def handle(request, response):
        requests.append(request)
        fill(response, response_fields)
        return response

    node.create_service(srv_type, service, handle)
    print("READY", flush=True)
    while rclpy.ok() and not requests:
        rclpy.spin_once(node, timeout_sec=0.1)
    # Keep spinning briefly so the response is sent before the process exits.
    for _ in range(10):
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(to_plain(requests[0])), flush=True)
    node.destroy_node()
    return 0


def main() -> int:
    mode, type_name, name = sys.argv[1:4]
    rclpy.init()
    try:
        return {"echo": echo, "serve": serve}[mode](type_name, name)
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
