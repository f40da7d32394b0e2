"""Structural-health monitoring from Python, as in a notebook: a simulated 4-storey
building shaken by the ground, its modes identified, then watched for damage window by
window through a daily temperature cycle.

    cargo build --release && pip install ./bindings/python matplotlib pandas
    python examples/python/structure.py          # writes structure.png

The building comes from `unmix synth shm` (the command line): storey 2 loses 10 % of its
stiffness half-way through 20 minutes. Each block below is a notebook cell.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import unmix

# %% The building's accelerations (4 floors, 200 Hz) and its true modes.
root = Path(__file__).resolve().parents[2]
cli = os.environ.get("UNMIX_BIN", str(root / "target" / "release" / "unmix"))
folder = Path(tempfile.mkdtemp()) / "building"
subprocess.run(
    [cli, "synth", "shm", "--duration-s", "1200", "--damage-storey", "2", "--environment", "0.015",
     "--seed", "3", "-o", str(folder)],
    check=True,
)
x, rate = unmix.read(folder / "mixture.wav")
print(f"record: {x.shape[0]} frames × {x.shape[1]} sensors at {rate} Hz")

# %% The modes of the healthy first half, compared with the truth (meta.json).
healthy = x[: 600 * rate]
found = unmix.modes(healthy, 4, rate, reference=folder / "meta.json")
print(found.to_frame()[["frequency_hz", "frequency_std_hz", "damping_ratio", "damping_std"]].round(4))
print("MAC with the true shapes:", [round(m["mac"], 4) for m in found.report["reference"]["matched"]])

# %% Watch all of it: a baseline on the first 6 minutes, then a window a minute.
watch = unmix.monitor(x, rate, "6min", window="60s")
table = watch.to_frame()
print(table[["t_start", "damage_index", "limit", "alarm", "frequency_change_percent_1"]].round(2))
print("summary:", json.dumps(watch.summary))

# %% A monitor for windows as a logger delivers them: the baseline's, one window assessed.
monitor = unmix.Monitor.fit(x[: 360 * rate], rate, window="60s")
line = monitor.assess(x[-60 * rate :], t_start=(x.shape[0] - 60 * rate) / rate)
print(f"last minute: damage index {line['damage_index']:.1f} (limit {monitor.limit:.1f}), alarm {line['alarm']}")

# %% Plot the damage index against its limit, and the first mode's frequency.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
top.semilogy(table["t_start"], table["damage_index"], "o-", label="damage index")
top.axhline(watch.baseline["limit"], color="red", label="limit")
top.axvline(600, color="grey", linestyle=":", label="damage starts")
top.legend()
bottom.plot(table["t_start"], table["frequency_hz_1"], "o-")
bottom.set_ylabel("mode 1 (Hz)")
bottom.set_xlabel("window start (s)")
fig.tight_layout()
fig.savefig("structure.png", dpi=100)
print("wrote structure.png")
