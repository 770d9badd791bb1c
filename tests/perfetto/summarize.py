#!/usr/bin/env python3
"""Reads a Perfetto trace with the Perfetto project's own protobuf classes
(PyPI's `perfetto`) and prints, as JSON, what the e2e tests compare with
kernel-delay's report: the processes' names; per thread track (pid, tid,
name), the time of its "state" slices by name, its system call slices
counted by name, its instants (slow calls, wakeups) counted by name, and
its slow calls' arguments (duration_ns, the stacks);
the time of its ready_busy_cpu slices by the task they name `behind`; the
slices ready that a wakeup began, by the task that woke it (`woken_by`):
how many, and the time asleep or blocked each ended; every slice whose
begin and end do not pair up on its track; and every flow that does not
go from an instant on the waker's track to the slice its wakeup began;
the clock snapshot's primary clock and the clocks it names.

usage: summarize.py TRACE
"""
import json
import sys
from collections import defaultdict

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

BEGIN = pb.TrackEvent.TYPE_SLICE_BEGIN
END = pb.TrackEvent.TYPE_SLICE_END
INSTANT = pb.TrackEvent.TYPE_INSTANT


def main(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())
    threads = {}   # thread track uuid -> {pid, tid, name}
    processes = {}  # pid -> its name, as last described
    parents = {}   # child track uuid -> (parent uuid, name)
    events = defaultdict(list)  # track uuid -> [(ts, order, type, name)]
    names = {}  # interned slice names, by number
    arg_names = {}  # interned argument names, by number
    flows = defaultdict(lambda: {"starts": [], "ends": []})  # id -> track uuids
    clock = None
    for order, packet in enumerate(trace.packet):
        if packet.sequence_flags & pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED:
            names, arg_names = {}, {}
        if packet.HasField("clock_snapshot"):
            snapshot = packet.clock_snapshot
            clock = {
                "primary": snapshot.primary_trace_clock,
                "clocks": [c.clock_id for c in snapshot.clocks if c.timestamp > 0],
            }
        if packet.HasField("interned_data"):
            for name in packet.interned_data.event_names:
                names[name.iid] = name.name
            for name in packet.interned_data.debug_annotation_names:
                arg_names[name.iid] = name.name
        if packet.HasField("track_descriptor"):
            track = packet.track_descriptor
            if track.HasField("process") and track.process.HasField("process_name"):
                processes[str(track.process.pid)] = track.process.process_name
            if track.HasField("thread"):
                threads[track.uuid] = {
                    "pid": track.thread.pid if track.thread.HasField("pid") else None,
                    "tid": track.thread.tid,
                    "name": track.thread.thread_name,
                }
            elif track.HasField("parent_uuid"):
                parents[track.uuid] = (track.parent_uuid, track.name)
        elif packet.HasField("track_event"):
            event = packet.track_event
            if packet.timestamp_clock_id != 3:
                raise SystemExit(f"packet {order}: not on CLOCK_MONOTONIC")
            name = event.name if event.HasField("name") else names.get(event.name_iid)
            if event.type == BEGIN and name is None:
                raise SystemExit(f"packet {order}: a slice of no known name")
            args = {}
            for annotation in event.debug_annotations:
                arg = arg_names[annotation.name_iid]
                args[arg] = (
                    annotation.int_value
                    if annotation.HasField("int_value")
                    else annotation.string_value
                )
            for flow in event.flow_ids:
                flows[flow]["starts"].append(event.track_uuid)
            for flow in event.terminating_flow_ids:
                flows[flow]["ends"].append((event.track_uuid, args.get("woken_by_tid")))
            events[event.track_uuid].append(
                (packet.timestamp, order, event.type, name or "", args)
            )
    summary = {
        uuid: dict(
            thread,
            state={},
            calls={},
            interrupts=0,
            instants={},
            slow=[],
            behind={},
            woken_by={},
        )
        for uuid, thread in threads.items()
    }
    unpaired = []
    for uuid, track_events in events.items():
        if uuid in summary:
            owner, kind = uuid, "calls"
        elif uuid in parents and parents[uuid][0] in summary:
            owner, kind = parents[uuid][0], parents[uuid][1]
        else:
            raise SystemExit(f"events on track {uuid:#x}, which no descriptor describes")
        open_slices = []
        # The state slice that ended last, for the wait a wakeup ended.
        last_state = None
        for ts, _, kind_of_event, name, args in sorted(track_events, key=lambda e: e[:2]):
            if kind_of_event == INSTANT:
                instants = summary[owner]["instants"]
                instants[name] = instants.get(name, 0) + 1
                if name.startswith("slow "):
                    summary[owner]["slow"].append(args)
            elif kind_of_event == BEGIN:
                open_slices.append((ts, name, args))
            elif kind_of_event == END:
                if not open_slices:
                    unpaired.append(f"{uuid:#x}: an end at {ts} without a begin")
                    continue
                start, name, args = open_slices.pop()
                thread = summary[owner]
                if kind == "state":
                    thread["state"][name] = thread["state"].get(name, 0) + ts - start
                    if "behind" in args:
                        holder = str(args.get("behind_tid", args["behind"]))
                        thread["behind"][holder] = thread["behind"].get(holder, 0) + ts - start
                    if "woken_by" in args:
                        waker = str(args.get("woken_by_tid", args["woken_by"]))
                        woken = thread["woken_by"].setdefault(waker, {"count": 0, "ended_ns": 0})
                        woken["count"] += 1
                        if last_state and last_state[1] == start and last_state[2] in (
                            "sleeping",
                            "blocked",
                        ):
                            woken["ended_ns"] += last_state[1] - last_state[0]
                    last_state = (start, ts, name)
                elif kind == "calls":
                    thread["calls"][name] = thread["calls"].get(name, 0) + 1
                else:
                    thread["interrupts"] += 1
        unpaired += [f"{uuid:#x}: {name} begun at {ts} never ended" for ts, name in open_slices]
    bad_flows = []
    for flow, ends in flows.items():
        starts, terminations = ends["starts"], ends["ends"]
        if len(starts) != 1 or len(terminations) != 1:
            bad_flows.append(f"flow {flow}: {len(starts)} starts, {len(terminations)} ends")
        elif threads.get(starts[0], {}).get("tid") != terminations[0][1]:
            bad_flows.append(f"flow {flow}: from {starts[0]:#x}, not the waker's track")
    print(
        json.dumps(
            {
                "threads": list(summary.values()),
                "processes": processes,
                "clock": clock,
                "unpaired": unpaired,
                "flows": len(flows),
                "bad_flows": bad_flows,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
