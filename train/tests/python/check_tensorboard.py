"""Load a reasongen TensorBoard event folder with TensorBoard's own reader and print
every scalar as `tag step value` lines, sorted (the Rust test compares them)."""

import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
for tag in sorted(acc.Tags()["scalars"]):
    for e in acc.Scalars(tag):
        print(f"{tag} {e.step} {e.value:.6g} {e.wall_time:g}")
