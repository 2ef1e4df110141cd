"""The selective-decoding benchmark, ROS-free (shared/design/evaluation.md):
the CLI is ``vljepa_ros.apps.bench``; the part that drives the real nodes is
``vljepa_ros.ros.bench_runtime``.

* ``streams``: an episode as perception_node publishes it (``Stream``) and what
  a decoder says about an embedding (``Mapper``)
* ``model_streams``: streams and mappers from a checkpoint and a dataset split
* ``curves``: arithmetic on quality-vs-decodes curves (decode reduction at equal quality)
* ``policies``: uniform, selective (the change detector) and Ward decoding, scored
* ``report``: the JSON, the Markdown page and the plot
* ``backends``: torch, onnxruntime and openvino side by side (latency, stages, RSS)
"""
