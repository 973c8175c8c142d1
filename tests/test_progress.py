"""Progress lines: rates and ETAs from the steps after the first, periodic lines off a terminal."""

import io
import time

import pytest

from keras_alexnet.progress import ProgressLine, Rate, format_duration, format_rate, phase


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def test_rate_and_eta_leave_the_first_step_out():
    clock = Clock()
    rate = Rate(clock)
    clock.now = 40.0  # the first step: 40 s of tracing
    rate.observe(1)
    assert rate.per_second is None and rate.eta(100) is None
    for step in range(2, 12):  # then 0.5 s a step
        clock.now += 0.5
        rate.observe(step)
    assert rate.per_second == pytest.approx(2.0)
    assert rate.eta(100) == pytest.approx((100 - 11) / 2.0)


def test_eta_after_a_resume_counts_only_this_process():
    clock = Clock()
    rate = Rate(clock)
    rate.observe(700)  # resumed at step 700 of 1000: the first step of this process
    clock.now = 1.0
    rate.observe(701)
    assert rate.eta(1000) == pytest.approx(299.0)  # 1 s a step, not 700 steps in 1 s


def test_rates_and_durations_are_printed_with_sensible_precision():
    assert format_rate(1234.5678) == "1,235" and format_rate(17.3456) == "17.3" and format_rate(2.4567) == "2.46"
    assert format_duration(59.6) == "1:00" and format_duration(3725) == "1:02:05"


def test_off_a_terminal_a_line_at_the_start_then_every_interval():
    clock, out = Clock(), io.StringIO()
    line = ProgressLine("10-crop test", 1000, stream=out, interactive=False, interval=15.0, clock=clock)
    assert out.getvalue().splitlines() == ["10-crop test |    0/1000 images [>...................]   0% | ETA -- "
                                           "| 0:00 elapsed"]
    for done in range(100, 1001, 100):  # 100 images every 4 s
        clock.now += 4.0
        line.update(done)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at the start, then at 16 s and 32 s, and at the total (40 s); no \r anywhere
    assert lines[1].startswith("10-crop test |  400/1000 images [========>...........]  40% | 25 img/s | "
                               "ETA 0:24 | 0:16 elapsed")
    assert lines[3].startswith("10-crop test | 1000/1000 images [====================] 100% | 25 img/s | "
                               "ETA 0:00 | 0:40 elapsed")
    line.close()  # the final count is printed already
    assert out.getvalue().splitlines() == lines and "\r" not in out.getvalue()


def test_off_a_terminal_the_final_count_is_printed_when_the_line_closes():
    """A phase shorter than the interval, or one that ends below its total (a damaged record, fewer
    images than counted), still prints the count it reached when it closes; nothing to add when the
    last line printed shows it."""
    clock, out = Clock(), io.StringIO()
    line = ProgressLine("stats", 15, stream=out, interactive=False, interval=15.0, clock=clock, redraw=None)
    for done in (4, 8, 12):
        clock.now += 1.0
        line.update(done)
    assert len(out.getvalue().splitlines()) == 1
    line.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("stats | 12/15 images [================>...]  80% | ")
    assert lines[1].endswith("| 0:03 elapsed")
    empty = io.StringIO()
    ProgressLine("nothing", 5, stream=empty, interactive=False, clock=clock, redraw=None).close()
    assert len(empty.getvalue().splitlines()) == 1  # the start line shows 0/5 already


def test_on_a_terminal_one_line_redrawn_in_place():
    clock, out = Clock(), io.StringIO()
    line = ProgressLine("Epoch 1/2", 10, count_unit="steps", images_per_count=64, stream=out, interactive=True,
                        clock=clock, columns=200)
    for step in range(1, 11):
        clock.now += 1.0
        line.update(step, loss=0.5)
    line.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\x1b[K\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("Epoch 1/2 | 10/10 steps [====================] 100% | loss 0.5000 | 64 img/s | ETA 0:00")


def test_a_phase_says_what_runs_and_how_long_it_took():
    out = io.StringIO()
    with phase("Exporting SavedModel", stream=out, interactive=False):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "Exporting SavedModel ..." and lines[1].startswith("Exporting SavedModel: done in ")


def test_an_open_line_keeps_moving_while_a_step_is_slow_and_stops_when_closed():
    out = io.StringIO()
    line = ProgressLine("Epoch 1/2", 10, count_unit="steps", stream=out, interactive=True, redraw=0.02,
                        waiting="tracing the training step")
    time.sleep(0.5)  # a first step that takes long: no update, yet the line is redrawn
    assert out.getvalue().count("\r") > 2 and "tracing the training step" in out.getvalue()
    line.update(1)
    line.close()
    assert "tracing" not in out.getvalue().split("\r")[-1]
    closed = out.getvalue()
    time.sleep(0.2)
    assert out.getvalue() == closed  # the redrawing thread ended with the line


def test_one_line_at_a_time_a_new_phase_ends_the_open_line():
    out = io.StringIO()
    epoch = ProgressLine("Epoch 1/2", 10, count_unit="steps", stream=out, interactive=True, redraw=None)
    epoch.update(10)
    ProgressLine("  validation (10 crops)", 100, stream=out, interactive=True, redraw=None)
    first, second = out.getvalue().split("\n", 1)
    assert first.split("\r")[-1].startswith("Epoch 1/2 | 10/10 steps") and "validation" in second
    epoch.update(10)  # a closed line draws nothing more
    assert out.getvalue().count("Epoch") == out.getvalue().split("\n", 1)[0].count("Epoch")


def _shown(text):
    """What a terminal keeps of text redrawn with \r: the last state of each line."""
    return [line.split("\r")[-1].replace("\x1b[K", "") for line in text.split("\n")]


def test_on_a_narrow_terminal_the_least_important_fields_go_first():
    clock = Clock()
    full = []
    for columns in (200, 100, 80, 60, 50, 40, 20):
        out = io.StringIO()
        line = ProgressLine("Epoch 3/90", 5000, count_unit="steps", images_per_count=128, stream=out,
                            interactive=True, clock=clock, redraw=None, columns=columns)
        for step in (1, 1250):
            clock.now += 50.0
            line.update(step, loss=6.54321, **{"top-1 error": 0.98765})
        line.close()
        shown = [text for text in _shown(out.getvalue()) if text]
        assert shown and all(len(text) <= columns - 1 for text in shown), (columns, shown)
        full.append(shown[-1])
    assert full[0] == ("Epoch 3/90 | 1250/5000 steps [=====>..............]  25% | loss 6.5432 | top-1 error "
                       "0.9877 | 3,197 img/s | ETA 2:30 | 1:40 elapsed")
    # The bar goes first, then the elapsed time, the rate, the values (the last first), the ETA; then a cut.
    assert full[1] == "Epoch 3/90 | 1250/5000 steps  25% | loss 6.5432 | top-1 error 0.9877 | 3,197 img/s | ETA 2:30"
    assert full[2] == "Epoch 3/90 | 1250/5000 steps  25% | loss 6.5432 | top-1 error 0.9877 | ETA 2:30"
    assert full[3] == "Epoch 3/90 | 1250/5000 steps  25% | loss 6.5432 | ETA 2:30"
    assert full[4] == "Epoch 3/90 | 1250/5000 steps  25% | ETA 2:30"
    assert full[5] == "Epoch 3/90 | 1250/5000 steps  25%"
    assert full[6] == "Epoch 3/90 | 1250/5"


def test_the_width_is_read_again_at_each_redraw(monkeypatch):
    from keras_alexnet import progress

    columns = [160]
    monkeypatch.setattr(progress, "terminal_columns", lambda stream: columns[0])
    clock, out = Clock(), io.StringIO()
    line = ProgressLine("10-crop test", 1000, stream=out, interactive=True, clock=clock, redraw=None)
    clock.now += 1.0
    line.update(100)
    wide = out.getvalue().split("\r")[-1]
    columns[0] = 40  # the window was made narrower
    clock.now += 1.0
    line.update(200)
    narrow = out.getvalue().split("\r")[-1].replace("\x1b[K", "")
    assert "[==" in wide and len(narrow) <= 39 and narrow.startswith("10-crop test |  200/1000 images  20%")


def test_off_a_terminal_lines_are_whole_whatever_the_width():
    out = io.StringIO()
    ProgressLine("x" * 300, 10, stream=out, interactive=False, redraw=None, columns=20)
    assert out.getvalue().startswith("x" * 300 + " |  0/10 images [>")


def test_the_rate_is_in_the_unit_counted():
    clock = Clock()
    rates = {}
    for images_per_count in (None, 32):
        out = io.StringIO()
        line = ProgressLine("validation", 100, count_unit="steps", images_per_count=images_per_count, stream=out,
                            interactive=False, interval=0.0, clock=clock, redraw=None)
        line.update(1)
        clock.now += 10.0
        line.update(51)  # 50 steps in 10 s
        rates[images_per_count] = out.getvalue().splitlines()[-1].split(" | ")[2]
    assert rates == {None: "5 steps/s", 32: "160 img/s"}


def test_validation_line_counts_images_per_second_not_batches():
    from callbacks.throughput import Progress, Throughput

    clock, out = Clock(), io.StringIO()
    progress = Progress(4, 1, Throughput(64), printer=lambda text: None, stream=out, interactive=False,
                        interval=0.0, validation_steps=40, clock=clock)
    progress.on_test_begin()
    for step in range(40):  # a step every 0.025 s: 40 batches a second of 64 images
        clock.now += 0.025
        progress.on_test_batch_end(step)
    progress.on_test_end()
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("  validation (centre crop) | 40/40 steps [====================] 100% | 2,560 img/s"), last
