"""The metrics of every epoch as a CSV file (`runs/<name>/metrics.csv`), one row per epoch.

Unlike `keras.callbacks.CSVLogger`, columns that appear later (10-crop error every N epochs) are
added to the header, and a resumed run replaces rows of epochs it runs again, so the file always
reads as one uninterrupted run. Rows are written atomically (temporary file + rename).
"""

import csv
import os

import keras

from keras_alexnet import atomic


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class MetricsCSV(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        rows = [r for r in read_rows(self.path) if int(r["epoch"]) < epoch + 1]
        row = {"epoch": epoch + 1}
        for key, value in sorted((logs or {}).items()):
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                continue
        rows.append(row)
        fields = ["epoch"]
        for r in rows:
            fields += [k for k in r if k not in fields]
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with atomic.replacing(self.path, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
