"""Reports the training records dropped because their image could not be decoded.

The input pipeline skips such records instead of stopping (a corrupt JPEG in an ImageNet-sized set
must not end a week-long run) and counts them in a `pipelines.record_parser.DropCounter`. At the end
of each epoch this callback moves the count into the epoch's logs (`dropped_records`, so the summary
line, the CSV and TensorBoard show it) and says so when it is not zero.
"""

import keras


class DroppedRecords(keras.callbacks.Callback):
    """Puts `counter.take()` into each epoch's logs as `dropped_records`; place it before the loggers."""

    def __init__(self, counter, printer=print):
        super().__init__()
        self.counter = counter
        self.printer = printer

    def on_epoch_end(self, epoch, logs=None):
        dropped = self.counter.take()
        if logs is not None:
            logs["dropped_records"] = dropped
        if dropped:
            self.printer(f"epoch {epoch + 1}: {dropped} record(s) dropped: their image could not be "
                         "decoded (named above)")
