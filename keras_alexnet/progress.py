"""Progress of the long phases (training epochs, validation, 10-crop evaluation, feature extraction,
export) on the terminal, so the output never goes silent.

On a terminal a `ProgressLine` is one line redrawn in place (count, bar, rate, ETA) and, while it is
open, at least every second even when no unit completes (a first step that traces the graph, a slow
batch): the elapsed time keeps moving. Elsewhere (a log file, a pipe, a batch scheduler) it prints a
title line at once, then one line every `interval` seconds while it runs, and one with the final count
when the count reaches its total or the line is closed (unless the last line printed shows it already). On a terminal a redrawn line never
wraps: it is fitted to the terminal's width (read again at each redraw, so a resized window is followed)
by dropping its least important fields first (`fit_fields`), because a wrapped line cannot be redrawn in
place and leaves a copy of itself on every row it wrapped onto. Rates and ETAs come from `Rate`: the
steps after the first one seen by this process, because the first step carries tracing and
input-pipeline start-up (the first AlexNet step of a fresh process takes several seconds: bench/README.md,
start-up) and, after a resume, the steps run before the interruption were not timed here. Training times
are what AlexNet §1/§7 and VGG §3.3 report.
"""

import contextlib
import os
import shutil
import sys
import threading
import time
import weakref


def format_rate(value: float) -> str:
    """An integer with thousands separators from 100 up, else three significant digits."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour up."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def terminal_columns(stream) -> int:
    """The width of the terminal `stream` writes to, read now: the terminal's own size (what a resized
    window has), else `shutil.get_terminal_size()` (the COLUMNS variable, else 80)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or shutil.get_terminal_size().columns


def fit_fields(fields, width: int) -> str:
    """The fields `(separator, text, rank)` joined into a line of at most `width` characters.

    While the line is too long, the field of the highest rank (the last of them) is dropped; rank 0 is
    never dropped. A line of rank-0 fields still too long is cut at `width`."""
    kept = list(fields)

    def joined():
        return "".join((separator if i else "") + text for i, (separator, text, _) in enumerate(kept))

    line = joined()
    while len(line) > width and any(rank for _, _, rank in kept):
        top = max(rank for _, _, rank in kept)
        del kept[max(i for i, (_, _, rank) in enumerate(kept) if rank == top)]
        line = joined()
    return line[:max(width, 0)]


class Rate:
    """Units per second between the first and the latest `observe(done)` (cumulative counts).

    The first observation only sets the origin: the time of the first step of this process (tracing,
    pipeline start-up) never enters the rate, nor do steps counted before a resume.
    """

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self._origin = None
        self._latest = None

    def observe(self, done: float) -> None:
        point = (self.clock(), float(done))
        if self._origin is None:
            self._origin = point
        else:
            self._latest = point

    @property
    def per_second(self):
        """The rate, or None before two observations."""
        if self._latest is None:
            return None
        seconds = self._latest[0] - self._origin[0]
        return (self._latest[1] - self._origin[1]) / seconds if seconds > 0 else None

    def eta(self, total):
        """Seconds until `total` at the current rate, or None when unknown."""
        rate = self.per_second
        if rate is None or rate <= 0 or total is None or self._latest is None:
            return None
        return max(total - self._latest[1], 0.0) / rate


class ProgressLine:
    """Counts `done` of `total` (None: unknown) with a rate and an ETA.

    The rate is in the counted unit per second ("img/s" for images, "steps/s" for steps) unless
    `images_per_count` (the batch size of counted steps) converts the count into images: then in img/s.
    `interactive` defaults to `stream.isatty()`; `columns` (None: the terminal's width at each redraw)
    is the width a line on a terminal is fitted to. `values` given to `update`
    (name -> number or text) are shown after the counts, e.g. the running loss. `waiting` is shown
    until the first unit completes (e.g. "tracing the training step"). `redraw` (seconds, None: never)
    is how often a background thread redraws an open line on a terminal (or prints it every `interval`
    elsewhere) when `update` is not called; the thread ends with `close` or when the line is dropped.
    One line is open at a time: a new line (or a `phase`) closes the one still open, so a phase that
    shows its line until its work is really over (an input pipeline's shutdown) never draws over the next.
    """

    BAR = 20

    def __init__(self, title, total=None, count_unit="images", images_per_count=None, stream=None,
                 interactive=None, interval=15.0, clock=time.perf_counter, waiting=None, redraw=0.5, columns=None):
        self.title = title
        self.waiting = waiting
        self.total = total
        self.count_unit = count_unit
        if count_unit == "images" or images_per_count:
            self.rate_unit, self.per_count = "img/s", images_per_count or 1.0
        else:
            self.rate_unit, self.per_count = f"{count_unit}/s", 1.0
        self.columns = columns
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = _isatty(self.stream) if interactive is None else interactive
        self.interval = interval
        self.clock = clock
        self.rate = Rate(clock)
        self.done = 0
        self.values = {}
        self._start = clock()
        self._drawn = 0.0
        self._printed = self._start
        self._printed_done = 0  # the count the last line printed off a terminal showed
        self._open = True
        self._counted = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        _take_the_screen(self)
        self._write(self._line(), final=not self.interactive)
        if redraw:
            _start_ticker(self, redraw if self.interactive else min(redraw, interval), self._stop)

    def update(self, done, **values) -> None:
        with self._lock:
            self.done = done
            self._counted = True
            self.values.update(values)
            self.rate.observe(done)
            self._show(force=done == self.total)

    def _show(self, force=False):
        """Draws the line when it is due (caller holds the lock)."""
        if not self._open:
            return
        now = self.clock()
        if self.interactive:
            if force or now - self._drawn >= 0.2:
                self._drawn = now
                self._write(self._line(), final=False)
        elif now - self._printed >= self.interval or (force and self.done != self._printed_done):
            self._print_line(now)

    def _print_line(self, now):
        """Prints the line off a terminal (caller holds the lock)."""
        self._printed, self._printed_done = now, self.done
        self._write(self._line(), final=True)

    def _tick(self):
        with self._lock:
            self._show()

    def close(self, summary=None) -> None:
        """Ends the line: on a terminal the last state stays (or `summary` replaces it); elsewhere the
        final count is printed unless the last line printed shows it (or `summary` is)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._stop.set()
            if summary is not None:
                self._write(summary, final=True)
            elif self.interactive:
                self._write(self._line(), final=True)
            elif self.done != self._printed_done:
                self._print_line(self.clock())

    # Ranks of the fields (`fit_fields`): the highest is dropped first when the terminal is too narrow.
    BAR_RANK, ELAPSED_RANK, RATE_RANK, VALUE_RANK, ETA_RANK, WAITING_RANK = 7, 6, 5, 4, 3, 2

    def _fields(self):
        """The line as `fit_fields` fields: title | count [bar] percent | waiting | values | rate | ETA |
        elapsed."""
        fields = [("", self.title, 0)]
        if self.total:
            width = len(str(self.total))
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * self.BAR)
            fields += [(" | ", f"{self.done:>{width}}/{self.total} {self.count_unit}", 0),
                       (" ", f"[{'=' * filled}{'>' if filled < self.BAR else ''}{'.' * (self.BAR - filled - 1)}]",
                        self.BAR_RANK),
                       (" ", f"{fraction:4.0%}", 0)]
        elif self.done:
            fields.append((" | ", f"{self.done} {self.count_unit}", 0))
        else:
            fields.append((" | ", "starting", 0))
        if self.waiting and not self._counted:
            fields.append((" | ", self.waiting, self.WAITING_RANK))
        for name, value in self.values.items():
            text = f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
            fields.append((" | ", text, self.VALUE_RANK))
        rate = self.rate.per_second
        if rate is not None:
            fields.append((" | ", f"{format_rate(rate * self.per_count)} {self.rate_unit}", self.RATE_RANK))
        if self.total:
            eta = self.rate.eta(self.total)
            fields.append((" | ", f"ETA {format_duration(eta)}" if eta is not None else "ETA --", self.ETA_RANK))
        fields.append((" | ", f"{format_duration(self.clock() - self._start)} elapsed", self.ELAPSED_RANK))
        return fields

    def _line(self) -> str:
        """The whole line; on a terminal fitted to one column less than its width (a character in the
        last column leaves the cursor waiting to wrap)."""
        if not self.interactive:
            return fit_fields(self._fields(), sys.maxsize)
        columns = self.columns if self.columns is not None else terminal_columns(self.stream)
        return fit_fields(self._fields(), columns - 1)

    def _write(self, text, final):
        if self.interactive:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


_open_line = None  # a weak reference to the line last opened


def _take_the_screen(line):
    """Closes the line still open (if any) and records `line` (None: a `phase`) as the open one."""
    global _open_line
    previous = _open_line() if _open_line is not None else None
    if previous is not None and previous is not line:
        previous.close()
    _open_line = weakref.ref(line) if line is not None else None


def _start_ticker(line, period, stop):
    """Calls `line._tick()` every `period` seconds until `stop` is set or the line is garbage (the
    thread holds it weakly, so a line left open by an interrupted phase does not draw forever)."""
    ref = weakref.ref(line)

    def run():
        while not stop.wait(period):
            target = ref()
            if target is None:
                return
            target._tick()
            del target

    threading.Thread(target=run, daemon=True, name=f"progress: {line.title}").start()


@contextlib.contextmanager
def phase(title, stream=None, interactive=None, interval=15.0):
    """A phase without countable steps (writing a SavedModel, saving a model): says what runs at once,
    shows the elapsed time while it runs (redrawn each second on a terminal, a line every `interval`
    seconds elsewhere) and how long it took."""
    stream = stream if stream is not None else sys.stdout
    interactive = _isatty(stream) if interactive is None else interactive
    start = time.perf_counter()
    stop = threading.Event()
    lock = threading.Lock()

    def write(text, final):
        with lock:
            stream.write(("\r" + text + "\x1b[K" + ("\n" if final else "")) if interactive else text + "\n")
            stream.flush()

    def tick():
        while not stop.wait(1.0 if interactive else interval):
            fields = [("", f"{title} ...", 0), (" ", f"{format_duration(time.perf_counter() - start)} elapsed", 1)]
            write(fit_fields(fields, terminal_columns(stream) - 1 if interactive else sys.maxsize), final=False)

    _take_the_screen(None)
    write(fit_fields([("", f"{title} ...", 0)], terminal_columns(stream) - 1) if interactive else f"{title} ...",
          final=not interactive)
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
    write(f"{title}: done in {time.perf_counter() - start:.1f} s", final=True)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
