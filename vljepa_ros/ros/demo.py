"""`make demo`: a scripted episode of the simulated tabletop through the whole
graph (sim camera -> perception_node -> decoder_node), each semantic event
printed as one line, then a summary checked against the ground truth.

    python -m vljepa_ros.ros.demo [--episode-seed 7] [--decode-mode generative|retrieval]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import rclpy
from rclpy.node import Node

from vljepa_ros.msg import SemanticEvent

from .bringup import build_graph, destroy_graph, spin_graph
from .common import RELIABLE_QOS, stamp_to_s

KIND_NAMES = {SemanticEvent.KIND_INITIAL: "INITIAL", SemanticEvent.KIND_CHANGE: "CHANGE",
              SemanticEvent.KIND_HEARTBEAT: "HEARTBEAT"}


class EventPrinter(Node):
    """A planner-like subscriber to /semantic_events."""

    def __init__(self, t0_s: float):
        super().__init__("demo_event_printer")
        self.t0_s = t0_s
        self.events: list[SemanticEvent] = []
        self.create_subscription(SemanticEvent, "semantic_events", self._on_event, RELIABLE_QOS)

    def _on_event(self, msg: SemanticEvent) -> None:
        self.events.append(msg)
        t = stamp_to_s(msg.header.stamp) - self.t0_s
        action = f"{msg.action} ({msg.action_confidence:.2f})" if msg.action else "-"
        print(f"  {t:7.2f}s  {KIND_NAMES.get(msg.kind, msg.kind):<9} {msg.text!r:<70} "
              f"action: {action:<42} change {msg.change_score:.3f}", flush=True)


def _nearest(model, texts: list[str], bank: list[str]) -> list[str]:
    import torch

    with torch.no_grad():
        e, b = model.encode_text(texts), model.encode_text(bank)
    return [bank[i] for i in (e @ b.T).argmax(1).tolist()]


def _ask_memory(graph, client_node, t0: float, final_state: dict, transitions: list[dict]) -> None:
    """Two questions to memory_node's services after the episode (what a planner would ask)."""
    from vljepa_ros.sim.captions import object_phrase
    from vljepa_ros.srv import LatestMoment, QueryMemory

    def call(srv_type, name, **fields):
        client = client_node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=10.0):
            return None
        request = srv_type.Request()
        for k, v in fields.items():
            setattr(request, k, v)
        future = client.call_async(request)
        spin_graph(graph, until=future.done, timeout_s=30.0)
        return future.result()

    print()
    print("memory (memory_node services, after the episode):")
    if final_state["objects"]:
        text = object_phrase(final_state["objects"][0])
        r = call(QueryMemory, "memory_node/query", text=text, top_k=1)
        if r is not None and r.success and r.moments:
            m = r.moments[0]
            print(f"  ~/query  {text!r}: moment at {stamp_to_s(m.header.stamp) - t0:.2f}s-"
                  f"{stamp_to_s(m.end_stamp) - t0:.2f}s (score {m.score:.3f}{', now' if m.is_open else ''}) "
                  f"text {m.text!r}")
        else:
            print(f"  ~/query  {text!r}: {r.message if r is not None else 'no answer'}")
    r = call(LatestMoment, "memory_node/latest", text="the lamp is off")
    lamp_off = [t["t_start"] for t in transitions if t["action"].get("kind") == "lamp_off"]
    truth = f"scripted: {lamp_off[-1]:.2f}s" if lamp_off else "scripted: never switched off"
    if r is not None and r.success:
        print(f"  ~/latest 'the lamp is off': since {stamp_to_s(r.since) - t0:.2f}s ({truth}); that moment's "
              f"text {r.moment.text!r}")
    else:
        print(f"  ~/latest 'the lamp is off': {r.message if r is not None else 'no answer'} ({truth})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--episode-seed", type=int, default=7)
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--decode-mode", default="generative", choices=("generative", "retrieval"))
    parser.add_argument("--max-frames", type=int, default=0, help="stop the episode early (0 = whole episode)")
    args = parser.parse_args(argv)

    from vljepa_ros.change_detection import match_events
    from vljepa_ros.sim.captions import scene_caption, state_caption
    from vljepa_ros.sim.parse import parse_state

    rclpy.init()
    graph = None
    try:
        t_setup = time.monotonic()
        graph = build_graph(
            use_sim_time=True,
            image_topic="camera/image_raw",
            sim_camera={"episode_seed": args.episode_seed, "split": args.split, "fps": args.fps,
                        "image_size": args.image_size, "time_source": "sim", "start_delay_s": 1.0,
                        "max_frames": args.max_frames},
            decoder_overrides={"decode_mode": args.decode_mode},
            memory_overrides={"memory_dir": tempfile.mkdtemp(prefix="vljepa-demo-memory-")})
        camera, perception = graph.camera, graph.perception
        script = camera.script
        n_frames = args.max_frames or script.n_frames
        transitions = [t for t in script.transitions() if t["frame_start"] < n_frames]
        t0 = stamp_to_s(camera.stamp_of(0.0).to_msg())
        printer = EventPrinter(t0)
        graph.extra.append(printer)
        print(f"vljepa_ros demo: episode {args.split} seed {args.episode_seed}, {n_frames} frames "
              f"({n_frames / args.fps:.1f} s) with {len(transitions)} scripted changes; model "
              f"{perception.pipeline.model_id}; decode mode {args.decode_mode} "
              f"(set-up {time.monotonic() - t_setup:.1f} s)", flush=True)
        print(f"  {'time':>8}  {'event':<9} {'text':<70} {'action':<50} change", flush=True)
        finished_at = []

        def done() -> bool:
            if camera.done and not finished_at:
                finished_at.append(time.monotonic())
            # let the last frames drain through perception and the decoder
            return bool(finished_at) and time.monotonic() - finished_at[0] > 3.0

        wall = time.monotonic()
        spin_graph(graph, until=done, timeout_s=60 + 10 * n_frames / args.fps)
        wall = time.monotonic() - wall

        # ---- summary against the ground truth ----------------------------------------
        events = printer.events
        changes = [e for e in events if e.kind == SemanticEvent.KIND_CHANGE]
        true_times = [t["t_start"] for t in transitions]
        model = perception.pipeline.checkpoint.model
        truth_bank = sorted({scene_caption(t["after_state"]) for t in transitions}
                            | {scene_caption(script.truths()[0].state())})
        truths = script.truths()
        mapped = _nearest(model, [e.text for e in events], truth_bank) if events else []
        correct_text = parsed_text = 0
        for e, m in zip(events, mapped):
            # the true state once the change has settled: at the decision, i.e. well after the state start
            frame = min(len(truths) - 1, int(round((stamp_to_s(e.header.stamp) - t0) * args.fps)) + int(args.fps))
            truth = scene_caption(truths[frame].state())
            correct_text += m == truth
            parsed = parse_state(e.text)  # strict: the text itself says the true state, no candidate list
            parsed_text += parsed is not None and state_caption(parsed) == truth
        # one-to-one, the rule of the benchmark and the integration test (change_detection.match_events)
        pairs = dict(match_events([stamp_to_s(e.header.stamp) - t0 for e in changes], true_times))
        hits = len(pairs)
        from vljepa_ros.sim.captions import action_text

        # an action on a change that matches no scripted change counts as wrong
        with_action = [k for k, e in enumerate(changes) if e.action]
        action_right = sum(k in pairs and changes[k].action == action_text(transitions[pairs[k]]["action"])
                           for k in with_action)
        p = perception.stats()
        d = graph.decoder.stream.counters()
        embeddings = graph.decoder.embeddings_seen
        print()
        print("ground truth:")
        for t in transitions:
            print(f"  {t['t_start']:7.2f}s  {action_text(t['action'])}")
        print()
        print(f"summary: {camera.frames_published} frames published, {p['received']} received and "
              f"{p['processed']} processed by perception ({p['dropped']} dropped, {p['stale']} stale, "
              f"{p['malformed']} malformed), {embeddings} embeddings -> {len(events)} events "
              f"({len(changes)} changes), texts: {d['texts_read']} state readings + {d['decodes']} Y-decoder calls; "
              f"text ratio {(d['decodes'] + d['texts_read']) / max(1, embeddings):.3f} (fixed-rate decoding: 1.000)")
        print(f"         changes within 0.5 s of a scripted change: {hits}/{len(true_times)} "
              f"(false alarms: {len(changes) - hits}); event text says the true state: {parsed_text}/{len(events)} "
              f"(nearest of the episode's states: {correct_text}/{len(events)}); "
              f"action right: {action_right}/{len(with_action)}; "
              f"wall time {wall:.1f} s")
        _ask_memory(graph, printer, t0, truths[-1].state(), transitions)
        return 0
    except (ValueError, RuntimeError) as e:
        print(f"vljepa-demo: {e}", file=sys.stderr)
        return 2
    finally:
        if graph is not None:
            destroy_graph(graph)
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
