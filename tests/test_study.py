"""keras_alexnet/study: the runner (arms x seeds, resume, study.json) with an injected training call, the
report on constructed results, the study definitions resolving to valid configs, and a tiny study end to end
through the real `train` on miniature Fashion-MNIST files."""

import glob
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from keras_alexnet.errors import FlagError
from keras_alexnet.study import definitions, report, runner, statistics
from keras_alexnet.study.definitions import Arm, Claim, Scale, Study

TINY_SCALE = Scale("cpu", {
    "architecture": "alexnet", "width": 0.125, "resize_size": 72, "image_size": 63, "init": "glorot",
    "learning_rate": 0.01, "lr_schedule": "constant", "batch_size": 8, "epochs": 1, "steps_per_epoch": 2,
    "shuffle_buffer": 64, "pca_jitter_std": 0.1, "log_every_steps": 1,
}, "tiny")

TINY = Study(
    name="tiny", description="two arms, one evaluation-only arm", scales={"cpu": TINY_SCALE},
    protocols=("center",),
    arms=(Arm("baseline", "the baseline"),
          Arm("no_lrn", "no LRN", {"lrn": False}, claim=Claim("AlexNet §3.3", "LRN helps", +1, 1.4, 1.2)),
          Arm("center_crop", "centre crop", measure="center", reference="baseline", reference_measure="ten_crop",
              trains=False, claim=Claim("AlexNet §4.1", "10-crop helps", +1))),
)


def _fake_train(calls, interrupt_at=None):
    """A stand-in for `train`: writes a run folder's metrics.csv and returns a result like train's."""

    def train(config, printer=print):
        config = config.resolve()
        calls.append((config.runs_dir, config.run_name, config.seed))
        if interrupt_at is not None and len(calls) == interrupt_at:
            os.makedirs(config.run_dir, exist_ok=True)  # a started run: its folder exists
            raise KeyboardInterrupt
        os.makedirs(config.run_dir, exist_ok=True)
        error = 0.3 - 0.01 * config.seed - (0.02 if config.model.lrn else 0.0)
        with open(os.path.join(config.run_dir, "metrics.csv"), "w") as f:
            f.write("epoch,top1_error,top5_error\n1,0.6,0.1\n2,%f,0.05\n" % error)
        return types.SimpleNamespace(validation={"ten_crop": {"top1_error": error, "top5_error": error / 4}},
                                     epochs_run=2, history={})
    return train


def _fake_measure(run_dir, protocols, split, max_examples):
    del run_dir, split, max_examples
    return {p: {"top1_error": 0.5, "top5_error": 0.1, "count": 20} for p in protocols}


def _plan(tmp_path, seeds=(0, 1)):
    return runner.Plan(TINY, TINY_SCALE, seeds, str(tmp_path / "studies" / "tiny"), {"data_dir": str(tmp_path)})


def test_runner_runs_arms_times_seeds_records_the_study_and_skips_finished_runs(tmp_path):
    plan = _plan(tmp_path)
    calls, lines = [], []
    results = runner.run_study(plan, train=_fake_train(calls), measure=_fake_measure, printer=lines.append)
    # seed by seed, evaluation-only arms train nothing
    assert [name for _, name, _ in calls] == ["baseline_seed0", "no_lrn_seed0", "baseline_seed1", "no_lrn_seed1"]
    assert {d for d, _, _ in calls} == {plan.study_dir} and [s for _, _, s in calls] == [0, 0, 1, 1]
    assert sorted(results) == [("baseline", 0), ("baseline", 1), ("no_lrn", 0), ("no_lrn", 1)]
    assert any("run 1 of 4" in line for line in lines) and any("ETA" in line for line in lines)
    saved = runner.read_result(plan.run_dir("no_lrn", 1))
    assert saved["measures"]["ten_crop"]["top1_error"] == pytest.approx(0.29)
    assert saved["measures"]["center"]["top1_error"] == 0.5
    assert saved["history"]["top1_error"] == [0.6, pytest.approx(0.29)]
    record = runner.read_study_record(plan.study_dir)
    assert record["seeds"] == [0, 1] and record["scale"] == "cpu"
    arms = {a["name"]: a for a in record["arms"]}
    assert arms["no_lrn"]["overlay"] == {"lrn": False} and arms["no_lrn"]["settings"]["lrn"] is False
    assert arms["no_lrn"]["claim"]["section"] == "AlexNet §3.3"
    assert arms["center_crop"]["trains"] is False and arms["center_crop"]["reference"] == "baseline"
    assert record["invocations"][0]["code_version"]

    again = []
    rerun = runner.run_study(plan, train=_fake_train(again), measure=_fake_measure, printer=lambda _: None)
    assert again == [] and sorted(rerun) == sorted(results)
    assert len(runner.read_study_record(plan.study_dir)["invocations"]) == 2


def test_interrupted_study_resumes_only_what_is_left(tmp_path):
    plan = _plan(tmp_path)
    calls = []
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(plan, train=_fake_train(calls, interrupt_at=3), measure=_fake_measure,
                         printer=lambda _: None)
    assert len(runner.collect(plan.study_dir)) == 2
    lines, resumed = [], []
    runner.run_study(plan, train=_fake_train(resumed), measure=_fake_measure, printer=lines.append)
    assert [name for _, name, _ in resumed] == ["baseline_seed1", "no_lrn_seed1"]
    assert any("resuming" in line for line in lines)
    assert len(runner.collect(plan.study_dir)) == 4


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARD_SCRIPT = r"""
import json, sys
from keras_alexnet.study import runner, sharding
from tests.test_study import TINY, TINY_SCALE, _fake_train, _fake_measure
study_dir, data_dir, shard = sys.argv[1:4]
calls = []
plan = runner.Plan(TINY, TINY_SCALE, (0, 1, 2), study_dir, {"data_dir": data_dir}, sharding.parse_shard(shard))
runner.run_study(plan, train=_fake_train(calls), measure=_fake_measure, printer=lambda _: None,
                 command="study tiny --shard=" + shard)
print(json.dumps([name for _, name, _ in calls]))
"""


def test_two_shards_at_once_run_disjoint_runs_whose_union_is_the_plan(tmp_path):
    """Two processes (two machines of a job array) run shards 0/2 and 1/2 of one study folder at the same
    time: each trains its own runs, together every run once, and both invocations are recorded."""
    study_dir = str(tmp_path / "studies" / "tiny")
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT, study_dir, str(tmp_path), shard], env=env,
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for shard in ("0/2", "1/2")]
    trained = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        trained.append(json.loads(out.strip().splitlines()[-1]))
    plan = _plan(tmp_path, seeds=(0, 1, 2))
    everything = [runner.run_name(arm.name, seed) for arm, seed in plan.runs()]
    assert not set(trained[0]) & set(trained[1]) and sorted(trained[0] + trained[1]) == sorted(everything)
    # unit k (here every run: no warm starts) goes to shard k mod 2 of the plan's order
    assert trained[0] == everything[0::2] and trained[1] == everything[1::2]
    assert sorted(runner.collect(study_dir)) == sorted((arm.name, seed) for arm, seed in plan.runs())
    record = runner.read_study_record(study_dir)
    assert sorted(i["shard"] for i in record["invocations"]) == ["0/2", "1/2"] and record["seeds"] == [0, 1, 2]
    assert record["arms"][1]["name"] == "no_lrn"
    leftovers = [f for _, _, files in os.walk(study_dir) for f in files if f.endswith(".tmp")]
    assert leftovers == []
    assert runner.missing_runs(TINY, record["seeds"], runner.collect(study_dir)) == []


def test_a_shard_keeps_a_warm_start_with_its_source_run():
    """VGG §3.1's warm start (D from A's run of the same seed) runs on the shard of its source, after it;
    the shards partition the plan for any N, and more seeds leave earlier runs on their shards."""
    from keras_alexnet.study import sharding

    study = definitions.VGG
    plan = runner.Plan(study, study.scales["cpu"], (0, 1, 2), "unused")
    names = lambda runs: [runner.run_name(arm.name, seed) for arm, seed in runs]  # noqa: E731
    everything = names(plan.runs())
    for count in (1, 2, 3, 5, 40):
        shards = [names(sharding.shard_runs(plan.runs(), sharding.Shard(i, count))) for i in range(count)]
        assert sorted(sum(shards, [])) == sorted(everything)
        for runs in shards:
            for seed in (0, 1, 2):
                if f"D_warm_start_seed{seed}" in runs:
                    assert runs.index(f"A_seed{seed}") < runs.index(f"D_warm_start_seed{seed}")
    fewer = runner.Plan(study, study.scales["cpu"], (0, 1), "unused")
    for i in range(3):
        before = names(sharding.shard_runs(fewer.runs(), sharding.Shard(i, 3)))
        after = names(sharding.shard_runs(plan.runs(), sharding.Shard(i, 3)))
        assert after[:len(before)] == before


@pytest.mark.parametrize("text, problem", [("2/2", "the shard index i must be 0 to 1"),
                                           ("1/0", "the number of shards N must be at least 1"),
                                           ("-1/2", "not of the form i/N"), ("half", "not of the form i/N")])
def test_a_bad_shard_is_refused(text, problem):
    from keras_alexnet.study import sharding

    with pytest.raises(ValueError, match=problem):
        sharding.parse_shard(text)


def _main_study(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "study", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_main_py_study_refuses_a_bad_shard_before_any_work(tmp_path):
    for args, problem in ((["--shard=4/4"], "--shard=4/4: the shard index i must be 0 to 3"),
                          (["--shard=0/2", "--report_only"], "--shard=0/2: --report_only reports every shard")):
        result = _main_study("alexnet", *args, f"--studies_dir={tmp_path}", cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        line, = result.stderr.strip().splitlines()
        assert line.startswith(f"main.py study: error: {problem}"), result.stderr
    assert os.listdir(tmp_path) == []


def test_main_py_report_only_merges_the_shards_finished_runs_and_names_the_missing(tiny_data, tmp_path):
    """Shard 0 of 7 of the AlexNet study done (an injected training call), a shard without runs through
    `main.py study --shard`, then `--report_only` reports what is finished and names the rest."""
    from keras_alexnet.study import sharding

    study = definitions.ALEXNET
    folder = tmp_path / "studies" / "alexnet"
    plan = runner.Plan(study, study.scales["cpu"], (0,), str(folder), {"data_dir": tiny_data}, sharding.Shard(0, 7))

    def train(config, printer=print):  # a finished run's metrics.csv, as `_fake_train`, without resolving data
        os.makedirs(config.run_dir, exist_ok=True)
        with open(os.path.join(config.run_dir, "metrics.csv"), "w") as f:
            f.write("epoch,top1_error,top5_error\n1,0.6,0.1\n")
        return types.SimpleNamespace(validation={"ten_crop": {"top1_error": 0.3, "top5_error": 0.1}}, epochs_run=1)

    done = runner.run_study(plan, train=train, measure=_fake_measure, printer=lambda _: None)
    assert sorted(done) == [("baseline", 0)]  # unit 0 of 7: the baseline of seed 0
    result_file = folder / "baseline_seed0" / runner.RESULT_FILE  # the class count a run's run.json gives
    result_file.write_text(json.dumps(dict(json.loads(result_file.read_text()), num_classes=10)))
    empty = _main_study("alexnet", "--shard=39/40", "--seeds=1", f"--data_dir={tiny_data}", "--studies_dir=studies",
                        cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr[-3000:]
    assert "shard 39/40: 0 of them" in empty.stdout and "Shard 39/40 of study alexnet done." in empty.stdout
    assert "6 run(s) not finished yet: no_lrn_seed0, " in empty.stdout
    assert "python main.py study alexnet --report_only --studies_dir=studies" in empty.stdout
    assert not os.path.exists(folder / "report.md")  # a shard writes no report
    result = _main_study("alexnet", "--report_only", "--studies_dir=studies", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    missing = [runner.run_name(arm.name, 0) for arm in study.trained_arms()[1:]]
    assert f"Reporting 1 finished runs; 6 run(s) not finished yet: {', '.join(missing)}" in result.stdout
    report_text = open(folder / "report.md").read()
    assert f"Partial: 6 run(s) not finished yet: {', '.join(missing)}." in report_text
    assert len(runner.read_study_record(str(folder))["invocations"]) == 2


def _result(top1, top5, history=None):
    return {"measures": {"ten_crop": {"top1_error": top1, "top5_error": top5},
                         "center": {"top1_error": top1 + 0.01, "top5_error": top5}},
            "history": {"top1_error": history or [0.5, 0.2]}, "num_classes": 10}


def test_report_rows_by_hand(tmp_path):
    results = {("baseline", 0): _result(0.20, 0.05), ("baseline", 1): _result(0.22, 0.05),
               ("baseline", 2): _result(0.24, 0.05),
               ("no_lrn", 0): _result(0.30, 0.06), ("no_lrn", 1): _result(0.31, 0.06),
               ("no_lrn", 2): _result(0.32, 0.06)}
    rows = {(r["arm"], r["metric"]): r for r in report.rows(TINY, results, 0.25)}
    base = rows[("baseline", "top-1 error (%)")]
    assert (base["n"], base["mean"], base["std"]) == (3, pytest.approx(22.0), pytest.approx(2.0))
    assert base["verdict"] == "" and base["difference"] is None
    arm = rows[("no_lrn", "top-1 error (%)")]
    # paired by seed: differences 10, 9, 8 (mean 9, sd 1, 2 df): half width t(0.975, 2) / sqrt(3) = 2.484138
    assert arm["difference"] == pytest.approx(9.0) and arm["pairs"] == 3
    assert (arm["ci_low"], arm["ci_high"]) == (pytest.approx(9.0 - 2.484138, abs=1e-5),
                                               pytest.approx(9.0 + 2.484138, abs=1e-5))
    assert arm["paper_difference"] == 1.4 and arm["section"] == "AlexNet §3.3"
    assert arm["verdict"] == statistics.SAME
    top5 = rows[("no_lrn", "top-5 error (%)")]
    assert top5["difference"] == pytest.approx(1.0) and top5["verdict"] == statistics.SAME  # zero spread
    center = rows[("center_crop", "top-1 error (%)")]  # paired: every seed's centre is 1 point worse
    assert center["pairs"] == 3 and center["difference"] == pytest.approx(1.0)
    assert center["n"] == 3 and center["verdict"] == statistics.SAME

    text, paths = report.write_report(TINY, str(tmp_path), results, 0.25, "# tiny")
    assert "| no_lrn | top-1 error (%), ten_crop | 3 | 31.00 ± 1.00 |" in text
    assert os.path.isfile(tmp_path / "report.csv") and os.path.isfile(tmp_path / "report.md")
    for name in ("training_error.png", "differences.png"):
        assert open(tmp_path / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(paths) == 4

    # a seed the reference lacks (an interrupted study) is summarised but not paired
    results[("no_lrn", 3)] = _result(0.40, 0.06)
    arm = {(r["arm"], r["metric"]): r for r in report.rows(TINY, results, 0.25)}[("no_lrn", "top-1 error (%)")]
    assert (arm["n"], arm["pairs"], arm["difference"]) == (4, 3, pytest.approx(9.0))
    assert "(3 seeds paired)" in report.markdown(report.rows(TINY, results, 0.25))


def test_epochs_to_error_arm_in_the_report():
    study = definitions.ALEXNET
    results = {("baseline", s): _result(0.2, 0.05, [0.5, 0.2, 0.1]) for s in range(2)}
    results.update({("tanh", s): _result(0.2, 0.05, [0.6, 0.5, 0.4]) for s in range(2)})
    rows = [r for r in report.rows(study, results, 0.25) if r["arm"] == "tanh"]
    assert len(rows) == 1 and rows[0]["metric"] == "epochs to 25% training error"
    assert rows[0]["mean"] == 3.0 and "did not reach" in rows[0]["note"]
    # baseline: 1 + (0.5 - 0.25) / (0.5 - 0.2) epochs
    assert rows[0]["difference"] == pytest.approx(3.0 - (1 + 0.25 / 0.3))


@pytest.mark.parametrize("name", list(definitions.STUDIES))
@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_every_study_arm_resolves_to_a_valid_config(name, scale, tmp_path):
    from pipelines import records

    study = definitions.get(name)
    study.validate()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / records.METADATA_FILE).write_text("{}")
    plan = runner.Plan(study, study.scales[scale], (0,), str(tmp_path / "s"), {"data_dir": str(data_dir)})
    for arm in study.trained_arms():
        if arm.needs():  # the warm start's source run must exist first
            os.makedirs(plan.run_dir(arm.needs()[0], 0), exist_ok=True)
        config = plan.config(arm, 0)
        try:
            resolved = config.resolve()
        except Exception as error:  # data checks aside, the settings must be valid
            assert "data" in str(error) or "dataset" in str(error), (arm.name, error)
            continue
        assert resolved.run_dir == plan.run_dir(arm.name, 0)
        for key, value in arm.overlay.items():
            assert key in runner.Plan.values(plan, arm, 0)
    names = [a.name for a in study.trained_arms()]
    for arm in study.arms:
        for needed in arm.needs():
            assert names.index(needed) < names.index(arm.name)


def test_unknown_study_is_a_flag_error():
    with pytest.raises(FlagError, match="unknown study 'resnet'"):
        definitions.get("resnet")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Miniature Fashion-MNIST IDX files (real format, made-up pixels) prepared like the built-in data."""
    from pipelines import default_data
    from pipelines.sources import fashion_mnist
    from tests.image_fixtures import write_idx

    folder = tmp_path_factory.mktemp("fashion_idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 80), ("test", 20)):
        images_file, labels_file = fashion_mnist.FILES[split]
        write_idx(str(folder / images_file), rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(str(folder / labels_file), (np.arange(n) % 10).astype(np.uint8))
    root = tmp_path_factory.mktemp("prepared")
    return default_data.ensure_default_data(str(root), 72, num_workers=1, source_dir=str(folder),
                                            validation_images=16)


def test_tiny_study_end_to_end_with_the_real_training_call(tiny_data, tmp_path):
    plan = runner.Plan(TINY, TINY_SCALE, (0, 1), str(tmp_path / "tiny"), {"data_dir": tiny_data})
    results = runner.run_study(plan, printer=lambda _: None)
    assert sorted(results) == [("baseline", 0), ("baseline", 1), ("no_lrn", 0), ("no_lrn", 1)]
    for (arm, seed), result in results.items():
        run_dir = plan.run_dir(arm, seed)
        assert os.path.isfile(os.path.join(run_dir, "run.json"))
        # one TensorBoard logdir (the study folder), the run's name its hparams trial: one row per arm and seed
        assert os.path.isdir(os.path.join(run_dir, "logs", f"{arm}_seed{seed}"))
        assert set(result["measures"]) == {"ten_crop", "center"}
        assert result["measures"]["center"]["count"] == 16
        assert 0.0 <= result["measures"]["ten_crop"]["top1_error"] <= 1.0
        assert len(result["history"]["top1_error"]) == 1
    recorded = json.load(open(os.path.join(plan.run_dir("no_lrn", 1), "run.json")))["config"]
    assert recorded["model"]["lrn"] is False and recorded["seed"] == 1
    # The hparams columns the last run declares: what tells the arms and seeds apart is flagged first.
    import tensorflow as tf
    from tensorboard.plugins.hparams import metadata

    trial = os.path.join(plan.run_dir("no_lrn", 1), "logs", "no_lrn_seed1")
    experiments = [metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
                   for path in glob.glob(os.path.join(trial, "events.out.*"))
                   for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value
                   if value.tag == metadata.EXPERIMENT_TAG]
    assert len(experiments) == 1
    assert sorted(info.name for info in experiments[0].hparam_infos if info.differs) == ["lrn", "seed"]

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    assert sorted(runner.run_study(plan, train=refuse, printer=lambda _: None)) == sorted(results)
    longer = runner.Plan(TINY, TINY_SCALE, (0, 1), plan.study_dir, {"data_dir": tiny_data, "epochs": 2})
    with pytest.raises(FlagError, match="--epochs=2: .*baseline_seed0 finished with 1 epochs"):
        runner.run_study(longer, train=refuse, printer=lambda _: None)
    text, _ = report.write_report(TINY, plan.study_dir, runner.collect(plan.study_dir), 0.25)
    assert "no_lrn" in text and "center_crop" in text


TINY_VGG_SCALE = Scale("cpu", {
    "architecture": "vgg_a", "width": 0.125, "image_size": 32, "resize_size": 36, "scale_jitter": 36, "mean": "rgb",
    "init": "glorot", "learning_rate": 0.01, "lr_schedule": "constant", "batch_size": 8, "epochs": 1,
    "steps_per_epoch": 2, "shuffle_buffer": 64, "pca_jitter_std": 0.0,
}, "tiny VGG")

TINY_VGG = Study(
    name="tiny_vgg", description="VGG Table 5's protocols on net A", scales={"cpu": TINY_VGG_SCALE},
    protocols=definitions.VGG.protocols, eval_examples=5,
    arms=tuple(definitions.VGG.arm(name) for name in ("A", "A_multi_crop", "A_dense_multi_crop")),
)


def test_tiny_vgg_study_measures_dense_multi_crop_and_both(tiny_data, tmp_path):
    """The VGG study's evaluation path (VGG §3.2, Table 5) on a really trained run: dense, 50-crop and
    their average, each on the first `eval_examples` validation images, in the report as their arms."""
    plan = runner.Plan(TINY_VGG, TINY_VGG_SCALE, (0,), str(tmp_path / "tiny_vgg"), {"data_dir": tiny_data})
    (result,) = runner.run_study(plan, printer=lambda _: None).values()
    measures = result["measures"]
    assert set(measures) == {"ten_crop", "dense", "multi_crop", "dense+multi_crop"}
    for name in ("dense", "multi_crop", "dense+multi_crop"):
        assert measures[name]["count"] == 5 and 0.0 <= measures[name]["top1_error"] <= 1.0
        assert measures[name]["top5_error"] <= measures[name]["top1_error"]
    text, _ = report.write_report(TINY_VGG, plan.study_dir, runner.collect(plan.study_dir), 0.25)
    assert "A_multi_crop" in text and "A_dense_multi_crop" in text and "Table 5" in text
