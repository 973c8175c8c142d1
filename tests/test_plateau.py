"""PlateauDecay on scripted validation-error sequences (AlexNet §5: ÷10 on plateau, three times, stop)."""

import keras
import pytest

from callbacks.lr_schedules import PlateauDecay


class FakeModel:
    def __init__(self, lr=0.01):
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)
        self.stop_training = False


def drive(callback, values, model=None, start_epoch=0):
    model = model or FakeModel()
    callback.set_model(model)
    lrs, stopped_at = [], None
    for epoch, value in enumerate(values, start=start_epoch):
        callback.on_epoch_end(epoch, {"val_top1_error": value})
        lrs.append(float(model.optimizer.learning_rate))
        if model.stop_training:
            stopped_at = epoch
            break
    return lrs, stopped_at, model


def test_three_reductions_then_stop():
    messages = []
    cb = PlateauDecay(patience=1, printer=messages.append)
    values = [0.9, 0.8, 0.8, 0.7, 0.75, 0.6, 0.6, 0.6, 0.5]
    lrs, stopped, _ = drive(cb, values)
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001, 1e-05, 1e-05], rel=1e-5)
    assert stopped == 7 and cb.reductions == 3 and cb.stopped
    assert len(messages) == 4 and "0.01 -> 0.001" in messages[0] and "stopping" in messages[-1]


def test_patience_and_min_delta():
    cb = PlateauDecay(patience=2, min_delta=0.01, printer=lambda m: None)
    # 0.795 is not an improvement of more than 0.01 over 0.8: two such epochs trigger a reduction.
    lrs, stopped, _ = drive(cb, [0.8, 0.795, 0.792, 0.7, 0.69])
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001], rel=1e-5)
    assert stopped is None and cb.best == 0.7 and cb.wait == 1


def test_zero_reductions_stops_at_first_plateau():
    cb = PlateauDecay(patience=1, max_reductions=0, printer=lambda m: None)
    lrs, stopped, _ = drive(cb, [0.5, 0.5, 0.4])
    assert stopped == 1 and lrs == pytest.approx([0.01, 0.01], rel=1e-5)


def test_state_round_trip_continues_the_same_schedule():
    values = [0.9, 0.8, 0.8, 0.7, 0.75, 0.6, 0.6, 0.6, 0.5]
    reference, ref_stop, _ = drive(PlateauDecay(printer=lambda m: None), values)
    first = PlateauDecay(printer=lambda m: None)
    lrs_a, _, model = drive(first, values[:4])
    second = PlateauDecay(printer=lambda m: None)
    second.set_state(first.get_state())
    resumed = FakeModel(lr=float(model.optimizer.learning_rate))
    lrs_b, stop_b, _ = drive(second, values[4:], model=resumed, start_epoch=4)
    assert lrs_a + lrs_b == pytest.approx(reference, rel=1e-5) and stop_b == ref_stop


def test_missing_metric_is_explained():
    cb = PlateauDecay(printer=lambda m: None)
    cb.set_model(FakeModel())
    with pytest.raises(KeyError, match="val_top1_error"):
        cb.on_epoch_end(0, {"loss": 1.0})
