"""Reports the training records dropped because their image could not be decoded, and those lost to
damaged shards.

The input pipeline skips such records instead of stopping (a corrupt JPEG or a damaged shard in an
ImageNet-sized set must not end a week-long run) and counts them in `pipelines.record_parser.DropCounter`s:
undecodable images one by one, a damaged shard's unreadable remainder (CRC mismatch, truncated file) as
a whole (its `dataset.json` count minus the records read), named on stderr in one line with its byte
offset, once per epoch. At the end of each epoch this callback moves
the counts into the epoch's logs (`dropped_records` always; `lost_records` only when not zero, so
TensorBoard shows it only then) and says so when they are not zero. `python main.py verify` names the
records.
"""

import keras

from pipelines.record_parser import DROPPED_NOTE, LOST_NOTE


class DroppedRecords(keras.callbacks.Callback):
    """Puts `counter.take()` into each epoch's logs as `dropped_records` and, when `lost` (the damaged
    shards' counter) is given and not zero, `lost.take()` as `lost_records`; place it before the loggers."""

    def __init__(self, counter, printer=print, lost=None):
        super().__init__()
        self.counter = counter
        self.printer = printer
        self.lost = lost

    def on_epoch_end(self, epoch, logs=None):
        dropped = self.counter.take()
        lost = self.lost.take() if self.lost is not None else 0
        if logs is not None:
            logs["dropped_records"] = dropped
            if lost:
                logs["lost_records"] = lost
        if dropped:
            self.printer(f"epoch {epoch + 1}: {dropped} {DROPPED_NOTE}")
        if lost:
            self.printer(f"epoch {epoch + 1}: {lost} {LOST_NOTE}")
