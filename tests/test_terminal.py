"""`main.py train` in a pseudo-terminal: every phase says what it does when it starts and the screen
never freezes until the end of the run; in a terminal 80 or 120 columns wide the redrawn lines fit the
width, so an epoch leaves one line on the screen.

The run is tiny but has every phase of a real one: epochs (the first step traces the graph), validation
(centre crop), 10-crop validation (AlexNet §4.1), saving the model, 10-crop evaluation of the test split
and the SavedModel export. The pty's output is read with a timestamp per chunk; from the first epoch's
line until the process exits, no two chunks of standard output are more than `MAX_GAP` seconds apart,
except while the line says that a step is being traced. `emulated_screen` plays the output back as a
terminal of a given width does (wrapping a row that is too long), to count what stays on the screen.
"""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

from tests.test_train_cli import ROOT, make_fashion_dir

MAX_GAP = 3.0
PHASES = ["Epoch 1/2", "validation (centre crop)", "validation (10 crops)", "Epoch 2/2", "epoch 2/2 |",
          "10-crop validation [AlexNet §4.1]", "Saving ", "10-crop test", "Exporting a SavedModel", "Done in"]


def run_in_pty(args, cwd, timeout=300, columns=160, program=None):
    """Runs main.py (or the `program` given as arguments to Python) with stdout on a pseudo-terminal
    `columns` wide; returns ([(seconds since start, text)], return code, stderr)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.pop("COLUMNS", None)  # the terminal's own size counts
    stderr_path = os.path.join(cwd, "stderr.txt")
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen([sys.executable] + (program or [os.path.join(ROOT, "main.py")]) + args, cwd=cwd,
                                   env=env, stdin=slave, stdout=slave, stderr=stderr, close_fds=True)
    os.close(slave)
    start = time.monotonic()
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append((time.monotonic() - start, data.decode("utf-8", "replace")))
            elif process.poll() is not None:
                break
            if time.monotonic() - start > timeout:
                process.kill()
                raise AssertionError(f"main.py {' '.join(args)} still running after {timeout} s")
    finally:
        os.close(master)
    code = process.wait(timeout=60)
    with open(stderr_path) as f:
        return chunks, code, f.read()


def screen_lines(text):
    """The text as a terminal would leave it, one entry per line (the last redraw of each)."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        lines.append(line.split("\r")[-1].replace("\x1b[K", ""))
    return lines


def emulated_screen(text, columns):
    """The rows a terminal `columns` wide shows after `text`: characters fill a row and wrap onto the next
    (at the next character after the last column), \r goes back to the row's start, \n down one row,
    ESC [ K clears to the end of the row; other escape sequences are ignored."""
    rows, row, column = [[]], 0, 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\x1b":
            match = re.match(r"\x1b\[[0-9;?]*([A-Za-z])", text[i:])
            if match and match.group(1) == "K":
                del rows[row][column:]
            i += match.end() if match else 1
            continue
        if char == "\r":
            column = 0
        elif char == "\n":
            row += 1
        else:
            if column >= columns:
                row, column = row + 1, 0
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (column + 1 - len(line)))
            line[column] = char
            column += 1
        while len(rows) <= row:
            rows.append([])
        i += 1
    return ["".join(line) for line in rows]


def redrawn_segments(text):
    """The states of the lines redrawn in place (each text a later \r wrote over)."""
    return [segment.replace("\x1b[K", "") for line in text.replace("\r\n", "\n").split("\n")
            for segment in line.split("\r")[:-1]]


PROGRESS_SCRIPT = """
import sys, time
from keras_alexnet.progress import ProgressLine, phase
line = ProgressLine("Epoch 1/90", 5000, count_unit="steps", images_per_count=256, redraw=0.05)
for step in range(1, 31):
    time.sleep(0.05)
    line.update(step, loss=6.9078, **{"top-1 error": 0.999})
line.close()
with phase("Saving " + "a/long/path/" * 12 + "model.keras"):
    time.sleep(1.2)
"""


def test_progress_lines_fit_the_terminals_width(tmp_path):
    for columns in (80, 120):
        chunks, code, stderr = run_in_pty([], str(tmp_path), timeout=60, columns=columns,
                                          program=["-c", PROGRESS_SCRIPT])
        text = "".join(chunk for _, chunk in chunks)
        assert code == 0, stderr
        redrawn = redrawn_segments(text)
        assert len(redrawn) > 5 and max(len(segment) for segment in redrawn) <= columns - 1, (columns, redrawn)
        screen = emulated_screen(text, columns)
        epoch_rows = [row for row in screen if row.startswith("Epoch 1/90")]
        assert len(epoch_rows) == 1 and epoch_rows[0].startswith("Epoch 1/90 |   30/5000 steps"), screen
        assert ("img/s" in epoch_rows[0]) == (columns == 120), epoch_rows  # room for more fields at 120
        assert sum(row.startswith("Saving a/long") for row in screen) == 1, screen  # its final line may wrap


def test_train_in_a_terminal_80_columns_wide_leaves_one_line_per_epoch(tmp_path):
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 192, "validation": 64, "test": 32})
    args = ["train", f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
            "--epochs=2", "--batch_size=32", "--pca_jitter_std=0", "--ten_crop_every=0", "--test_split=",
            "--run_name=narrow", "--noexport"]
    chunks, code, stderr = run_in_pty(args, str(tmp_path), columns=80)
    text = "".join(chunk for _, chunk in chunks)
    assert code == 0, text[-3000:] + stderr[-3000:]
    redrawn = redrawn_segments(text)
    assert redrawn and max(len(segment) for segment in redrawn) <= 79, [s for s in redrawn if len(s) > 79]
    screen = emulated_screen(text, 80)
    # The first line says what runs, seconds before TensorFlow is loaded; the import shows as a phase.
    loading = next(i for i, row in enumerate(screen) if row.startswith("Loading TensorFlow"))
    assert screen[0].startswith("Training alexnet on ") and "run folder runs/narrow" in "".join(screen[:loading])
    assert screen[loading].startswith("Loading TensorFlow: done in "), screen
    said = next(when for when, chunk in chunks if "Training alexnet" in chunk)
    loaded = next(when for when, chunk in chunks if "Loading TensorFlow: done" in chunk)
    seconds = float(screen[loading].split("done in ")[1].split()[0])
    assert loaded - said > 0.5 * seconds, (said, loaded, screen[loading])
    for title in ("Epoch 1/2 |", "Epoch 2/2 |", "  validation (centre crop) |"):
        rows = [row for row in screen if row.startswith(title)]
        assert len(rows) == (2 if "validation" in title else 1), (title, screen)
    assert all(len(row) <= 80 for row in screen)


def test_train_in_a_terminal_shows_progress_in_every_phase(tmp_path):
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 512, "validation": 128, "test": 256})
    args = ["train", f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
            "--architecture=alexnet", "--init=glorot", "--learning_rate=0.02", "--lr_schedule=linear",
            "--warmup_epochs=0.5", "--epochs=2", "--batch_size=32", "--pca_jitter_std=0", "--ten_crop_every=1",
            "--test_split=test", "--run_name=tty", "--export_dir=" + str(tmp_path / "saved_models")]
    chunks, code, stderr = run_in_pty(args, str(tmp_path), columns=160)
    text = "".join(chunk for _, chunk in chunks)
    assert code == 0, text[-3000:] + stderr[-3000:]

    # Each phase says what it does when it starts, in the order of a run.
    position = 0
    for phase in PHASES:
        found = text.find(phase, position)
        assert found >= 0, (phase, text[position:position + 2000])
        position = found

    # From the first epoch's line to the end, the output never stops for more than MAX_GAP seconds.
    elapsed, first = 0, None
    for when, chunk in chunks:
        elapsed += len(chunk)
        if first is None and elapsed > text.find("Epoch 1/2"):
            first = when
    # A wait the line has announced ("tracing the training step": the first step builds the graph, which
    # may hold the interpreter) is allowed.
    shown = [(when, chunk) for when, chunk in chunks if when >= first]
    gap, before, after = max((later[0] - earlier[0], earlier, later) for earlier, later in zip(shown, shown[1:])
                             if "tracing the" not in earlier[1])
    assert gap <= MAX_GAP, f"silent for {gap:.1f} s between {before} and {after}"

    # Sensible numbers: images/s as integers from 100 up, ETAs of a few-second epoch not in minutes.
    assert not re.search(r"\d\.\d{4} img/s", text) and not re.search(r"\d{3,}\.\d+ img/s", text), text[-2000:]
    etas = [int(m) * 60 + int(s) for m, s in re.findall(r"Epoch \d/2 .*?ETA (\d+):(\d\d)", text)]
    assert etas and max(etas) < 60, etas
    lines = screen_lines(text)
    assert any(line.startswith("Epoch 1/2 | 16/16 steps [====================] 100%") for line in lines), lines

