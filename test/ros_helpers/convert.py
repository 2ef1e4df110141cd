"""Messages <-> plain Python values, via the rosidl introspection API
(get_fields_and_field_types). rosidl_runtime_py's message_to_ordereddict and
set_message_fields do this on a ROS machine but are not installable from the
wheels; this is the small part the tests need."""
import array

import numpy as np


def to_plain(msg):
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: to_plain(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple, array.array, np.ndarray)):
        return [to_plain(v) for v in msg]
    if isinstance(msg, (np.floating, np.integer)):
        return msg.item()
    return msg


def fill(msg, values: dict):
    for name, value in values.items():
        current = getattr(msg, name)
        if hasattr(current, "get_fields_and_field_types"):
            fill(current, value)
        else:
            setattr(msg, name, value)
    return msg
