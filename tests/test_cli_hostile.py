"""Commands given hostile but plausible input: folders they did not write, files where folders belong, huge
numbers, Ctrl-C. Each must refuse with one line before doing any work (or stop with one line), and leave
nothing behind it did not mean to."""

import signal
import subprocess
import sys
import time

import pytest
from test_reliability import env, fast_cfg, make_zoo, one_line_error, rpg_main, sets

from rpg.cli.common import MAX_THREADS
from rpg.errors import RPGInputError
from rpg.generator.training import train
from rpg.lm.models import MODEL_MARKER, check_model_out
from rpg.lm.tasks import check_task_out

TORCH_THREADS = 1


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    train(fast_cfg(), make_zoo(base / "zoo"), base / "run", quiet=True)
    return base / "run"


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------ folders not ours
def test_lm_model_refuses_a_folder_it_did_not_write(tmp_path):
    out = make_zoo(tmp_path / "zoo")
    (out / "thesis.txt").write_text("years of work")
    before = listing(out)
    r = rpg_main("lm", "model", "--name", "smollm2_135m", "--out", out)
    one_line_error(r, "--out", out)
    assert listing(out) == before
    assert not list(tmp_path.glob(".zoo.*"))                      # no conversion was started beside it


def test_lm_model_accepts_its_own_earlier_output(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    for name in ("config.json", "tokenizer.json", MODEL_MARKER):      # a rerun after model.safetensors was deleted
        (out / name).write_text("{}")
    assert check_model_out(out) == out
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RPGInputError, match="notes.txt"):
        check_model_out(out)


def test_lm_task_refuses_to_write_into_a_zoo(tmp_path):
    out = make_zoo(tmp_path / "zoo")
    before = listing(out)
    r = rpg_main("lm", "task", "--name", "word_sentiment", "--out", out)
    one_line_error(r, "--out", out)
    assert listing(out) == before


def test_lm_task_accepts_its_own_folder(tmp_path):
    out = tmp_path / "task"
    out.mkdir()
    for name in ("train.jsonl", "test.jsonl", "word_sentiment.yaml"):
        (out / name).write_text("")
    assert check_task_out(out) == out
    (out / "sub").mkdir()
    with pytest.raises(RPGInputError, match="sub"):
        check_task_out(out)


def test_collect_refuses_a_file_or_a_run_as_out(tmp_path, trained_run):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    one_line_error(rpg_main("collect", "--zoo", "mini/cnn_s", "--out", a_file), "--out", a_file)
    before = listing(trained_run)
    one_line_error(rpg_main("collect", "--zoo", "mini/cnn_s", "--out", trained_run), "--out", trained_run)
    assert listing(trained_run) == before


# ------------------------------------------------------------------------------------ output files
@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_evaluate_checks_out_before_scoring(tmp_path, where):
    """The --zoo does not exist: an error naming --out shows the output was checked first."""
    if where == "folder":
        out = tmp_path / "existing"
        out.mkdir()
    else:
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "x.json"
    r = rpg_main("evaluate", "--zoo", tmp_path / "no_zoo", "--out", out)
    one_line_error(r, "--out", out)


def test_memory_checks_out_before_measuring(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    r = rpg_main("memory", "--checkpoints", tmp_path / "no_zoo", "--token-sizes", "8", "--out", out)
    one_line_error(r, "--out", out)


# ------------------------------------------------------------------------------------ huge numbers
@pytest.mark.parametrize("command", [
    ["train", "--checkpoints", "ZOO", "--out", "OUT"],
    ["generate", "--run", "ZOO", "--out", "OUT"],
    ["collect", "--zoo", "mini/cnn_s", "--out", "OUT"],
    ["evaluate", "--zoo", "ZOO", "--out", "OUT/x.json"],
    ["memory", "--checkpoints", "ZOO", "--token-sizes", "8", "--out", "OUT/x.json"],
    ["memory-study", "--out", "OUT/x.json"],
    ["lm", "model", "--name", "smollm2_135m", "--out", "OUT"],
])
def test_threads_beyond_the_machine_are_refused_while_parsing(tmp_path, command):
    zoo = make_zoo(tmp_path / "zoo", n=2)
    args = [str(zoo) if a == "ZOO" else a.replace("OUT", str(tmp_path / "out")) for a in command]
    one_line_error(rpg_main(*args, "--threads", MAX_THREADS + 1), "--threads")
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_num_that_cannot_fit(trained_run, tmp_path):
    out = tmp_path / "gen"
    r = rpg_main("generate", "--run", trained_run, "--out", out, "--num", 10 ** 15, "--device", "cpu")
    one_line_error(r, "--num")
    assert not out.exists()


@pytest.mark.parametrize("value", ["1e30", "2000.0", str(10 ** 30)])
def test_integer_settings_refuse_float_notation_and_absurd_values(tmp_path, value):
    zoo = make_zoo(tmp_path / "zoo", n=2)
    out = tmp_path / "run"
    r = rpg_main("train", "--checkpoints", zoo, "--out", out, "--preset", "tiny", "--device", "cpu",
                 *sets(**{"train.steps": value}))
    one_line_error(r, "train.steps")
    assert not out.exists()


def test_train_on_an_empty_zoo_leaves_no_run_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "runs" / "run"
    r = rpg_main("train", "--checkpoints", empty, "--out", out, "--preset", "tiny", "--device", "cpu", *sets())
    one_line_error(r, empty)
    assert not (tmp_path / "runs").exists()


def test_a_failed_train_keeps_a_folder_it_did_not_create(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(rpg_main("train", "--checkpoints", empty, "--out", out, "--preset", "tiny", *sets()), empty)
    assert (out / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------ Ctrl-C
def test_sigint_during_training_ends_with_one_line_and_status_130(tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    run = tmp_path / "run"
    args = ["train", "--checkpoints", zoo, "--out", run, "--preset", "tiny", "--device", "cpu", "--threads", "1",
            "--quiet", *sets(**{"train.steps": "100000", "train.save_every": "2"})]
    p = subprocess.Popen([sys.executable, "-m", "rpg", *map(str, args)], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first saved state: training is under way, and there is a state to resume from
        while not (run / "train_state.pt").exists() and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, p.stderr.read()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err[-3000:]
    assert (run / "train_state.pt").is_file()                        # what the message promises to resume from
    assert not (run / "generator.safetensors").exists() and not (run / "run.json").exists()


def test_lm_task_with_a_bad_num_test_creates_no_folder(tmp_path):
    out = tmp_path / "task"
    one_line_error(rpg_main("lm", "task", "--name", "word_sentiment", "--out", out, "--num-test", 10 ** 9),
                   "num_test")
    assert not out.exists()
