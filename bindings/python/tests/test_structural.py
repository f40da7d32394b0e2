"""The structural-health side from Python: `unmix.modes` and `unmix.monitor` are `unmix
modes` and `unmix monitor` on arrays — the same modes, damage indices and alarms — and they
refuse bad input with the command line's messages."""

import json
import subprocess

import numpy as np
import pytest

import unmix


def run(cli, *args):
    done = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def building(unmix_cli, tmp_path_factory):
    """A 4-storey building, 900 s at 200 Hz, with a daily temperature cycle; storey 2 loses
    10 % of its stiffness from 450 s (`unmix synth shm`)."""
    out = tmp_path_factory.mktemp("shm") / "building"
    run(unmix_cli, "synth", "shm", "--duration-s", 900, "--damage-storey", 2, "--damage-from-s", 450,
        "--environment", 0.015, "--environment-period-s", 120, "--seed", 3, "-o", out)
    return out


def test_modes_equal_the_command_lines(unmix_cli, building, tmp_path):
    run(unmix_cli, "modes", building / "mixture.wav", "-n", 4, "-o", tmp_path / "cli", "--reference",
        building / "meta.json", "--truth", building / "truth.wav", "--no-plots", "--quiet")
    cli = json.loads((tmp_path / "cli" / "modes.json").read_text())
    cli_coordinates, _ = unmix.read(tmp_path / "cli" / "coordinates.wav")

    x, rate = unmix.read(building / "mixture.wav")
    truth, _ = unmix.read(building / "truth.wav")
    ours = unmix.modes(x, 4, rate, reference=building / "meta.json", truth=truth)
    for key in ("modes", "demixing", "blocks", "frames", "channels", "sample_rate_hz", "score"):
        assert ours.report[key] == cli[key], key
    assert ours.report["reference"]["matched"] == cli["reference"]["matched"]
    np.testing.assert_array_equal(ours.coordinates, cli_coordinates)

    # The building's modes, found: every shape matches its true one, frequencies within 2 %.
    true_modes = json.loads((building / "meta.json").read_text())["modes"]
    assert all(m["mac"] > 0.99 for m in ours.report["reference"]["matched"])
    np.testing.assert_allclose(ours.frequencies_hz, true_modes["frequencies_hz"], rtol=0.02)
    assert ours.shapes.shape == (4, 4) and ours.demixing.shape == (4, 4)
    assert ours.report["score"]["mean_abs_corr"] > 0.95
    table = ours.to_frame()
    assert list(table.index) == [1, 2, 3, 4] and (table["frequency_std_hz"] > 0).all()


def test_monitor_equals_the_command_line_and_alarms_after_the_damage(unmix_cli, building, tmp_path):
    run(unmix_cli, "monitor", building / "mixture.wav", "--baseline", "300s", "--window", "60s", "-o",
        tmp_path / "cli.jsonl", "--quiet")
    cli = [json.loads(line) for line in (tmp_path / "cli.jsonl").read_text().splitlines()]

    x, rate = unmix.read(building / "mixture.wav")
    ours = unmix.monitor(x, rate, "300s", window=60)
    baseline = {k: v for k, v in ours.baseline.items() if k not in ("fit_s", "input")}
    assert baseline == {k: v for k, v in cli[0].items() if k not in ("fit_s", "input")}
    assert ours.windows == cli[1:-1]
    assert {k: cli[-1][k] for k in ours.summary} == ours.summary

    # Healthy windows stay quiet; the damage raises the index and sets off alarms.
    starts = np.array([w["t_start"] for w in ours.windows])
    healthy, damaged = starts + 60 <= 450, starts >= 450
    assert not ours.alarms[healthy].any()
    assert ours.summary["first_alarm_t_start"] >= 420 and ours.alarms[damaged].sum() >= 2
    assert ours.damage_index[damaged].mean() > 3 * ours.damage_index[healthy].max(), ours.damage_index
    frame = ours.to_frame()
    assert len(frame) == 10 and frame["alarm"].tolist() == ours.alarms.tolist()


def test_a_monitor_assesses_windows_as_they_come(building):
    x, rate = unmix.read(building / "mixture.wav")
    monitor = unmix.Monitor.fit(x[: 300 * rate], rate, window="1min", hop=30)
    assert (monitor.baseline_frames, monitor.window_frames, monitor.hop_frames) == (60000, 12000, 6000)
    assert (monitor.n_modes, monitor.n_channels, monitor.sample_rate) == (4, 4, 200)
    line = monitor.assess(x[60000:72000], t_start=300.0)
    assert line["kind"] == "window" and line["t_end"] == 360.0 and line["limit"] == monitor.limit

    # A dropout is counted in its window's line, not an error.
    gappy = x[60000:72000].copy()
    gappy[100:200, 1] = np.nan
    assert monitor.assess(gappy)["bad_frames"] == 100
    with pytest.raises(ValueError, match="windows are 12000 frames"):
        monitor.assess(x[:5000])
    with pytest.raises(ValueError, match="3 channels"):
        monitor.assess(x[:12000, :3])


def test_bad_input_says_what_is_wrong(building):
    x, rate = unmix.read(building / "mixture.wav")
    head = x[: 120 * rate]
    cases = [
        (lambda: unmix.modes(x[:, :2], 3, rate), ValueError, "3 modes asked for, but the record has 2 channels"),
        (lambda: unmix.modes(np.where(np.arange(len(x))[:, None] == 5, np.nan, x), 2, rate), ValueError,
         "sample NaN at frame 5, channel 1"),
        (lambda: unmix.modes(x, 0, rate), ValueError, "at least one mode"),
        (lambda: unmix.modes(x, 2, rate, reference="/nonexistent/modes.json"), OSError, "/nonexistent/modes.json"),
        (lambda: unmix.monitor(head, rate, "100s"), ValueError, "fewer than two windows"),
        (lambda: unmix.monitor(head, rate, "ten minutes"), ValueError, "not a"),
        (lambda: unmix.monitor(head, rate, 300), ValueError, "before the 300 s baseline"),
        (lambda: unmix.monitor(head, rate, 120, window=20, false_alarm_rate=0.7), ValueError,
         "not a rate between 0 and 0.5"),
        (lambda: unmix.monitor(head, rate, 120, window=20, modes=5), ValueError, "5 modes asked for"),
        (lambda: unmix.Monitor.fit(head, rate, window=True), ValueError, "window: not a switch"),
        (lambda: unmix.monitor(head, 0, 120), ValueError, "sample_rate"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
