"""Faults around what dinogen writes, signals in every command, runs that collide, and a new user's small things.

Issue 13, classes 5 (outputs), 6 (signals and faults), 7 (runs that collide) and 9 (small things). Real
signals, closed or full stdouts and file-size limits need child processes; they start together where they
can, and every wait has a timeout.
"""

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import NAMES, invoke, wait_for

from dinogen import cli
from dinogen.checkpoint import load_checkpoint, save_checkpoint
from dinogen.errors import DinogenError
from dinogen.output import append_line

TIMEOUT = 90  # seconds any child may take; 2 busy cores start torch slowly
STDIN_NAMES = b"tyrannosaurus\nvelociraptor\n" * 100_000  # 2.4 MB, more than a pipe holds: writing waits for the reader
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as at a terminal, even when the test runner ignores Ctrl-C


def _dinogen(*args, close_stdout: bool = False, **popen) -> subprocess.Popen:
    """`dinogen ARGS` in a child process; stdout and stderr are pipes unless `popen` says otherwise."""

    def prepare() -> None:
        _default_sigint()
        if close_stdout:
            os.close(1)

    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | popen
    return subprocess.Popen([sys.executable, "-m", "dinogen", *map(str, args)], preexec_fn=prepare, **streams)


def _finish(child: subprocess.Popen) -> tuple[int, str]:
    _, stderr = child.communicate(timeout=TIMEOUT)
    return child.returncode, stderr.decode()


def _temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*.tmp"))


def _copy_run(trained_run: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    return run_dir


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# Class 5: outputs


def test_a_symlink_is_followed_and_its_target_keeps_its_mode(trained_run, tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    result = invoke("sample", trained_run, "-n", 3, "--seed", 0, "-o", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and len(target.read_text().splitlines()) == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and not _temporaries(tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_get_the_mode_the_umask_gives(trained_run, tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert invoke("sample", trained_run, "-n", 2, "-o", tmp_path / "names.txt").exit_code == 0
        save_checkpoint(load_checkpoint(trained_run / "best.pt"), tmp_path / "copy.pt")
    finally:
        os.umask(previous)
    for name in ("names.txt", "copy.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl"):  # written by `dinogen train`
        assert stat.S_IMODE((trained_run / name).stat().st_mode) == 0o666 & ~previous, name


@needs_dev_full
def test_devices_are_written_directly_and_a_full_one_is_an_error(trained_run):
    result = invoke("sample", trained_run, "-n", 2, "-o", "/dev/null")
    assert result.exit_code == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    for command in (["sample", trained_run, "-n", 2], ["plot", trained_run]):
        result = invoke(*command, "-o", "/dev/full")
        assert result.exit_code == 1
        assert result.stderr.strip() == "Error: cannot write /dev/full: No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with pytest.raises(DinogenError, match="cannot write /dev/full: No space left on device"):
        append_line("/dev/full", "{}")  # how metrics.jsonl grows


def test_a_fifo_is_written_to_its_reader_and_without_one_is_an_error(trained_run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = invoke("sample", trained_run, "-n", 2, "-o", fifo)
    assert result.exit_code == 1 and f"cannot write {fifo}: nothing is reading from it" in result.stderr
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # two names fit in the pipe: no thread needed
    try:
        result = invoke("sample", trained_run, "-n", 2, "-o", fifo)
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert result.exit_code == 0 and len(received.splitlines()) == 2
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not _temporaries(tmp_path)


def test_a_failed_write_leaves_the_earlier_file_whole(trained_run, tmp_path, monkeypatch):
    plot = tmp_path / "loss.png"
    assert invoke("plot", trained_run, "-o", plot).exit_code == 0
    before = plot.read_bytes()

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    for command in (["plot", trained_run], ["sample", trained_run, "-n", 3]):
        result = invoke(*command, "-o", plot)
        assert result.exit_code == 1 and f"cannot write {plot}: No space left on device" in result.stderr
    assert plot.read_bytes() == before and not _temporaries(tmp_path)


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from dinogen.cli import main
main(sys.argv[2:], prog_name="dinogen")
"""


def test_a_file_size_limit_is_one_sentence_and_loses_nothing(trained_run, tmp_path):
    """`ulimit -f`: a plot over a good plot, and a resumed run whose metrics.jsonl cannot grow."""
    run_dir = _copy_run(trained_run, tmp_path)
    plot = tmp_path / "loss.png"
    assert invoke("plot", run_dir, "-o", plot).exit_code == 0
    good_plot, last = plot.read_bytes(), (run_dir / "last.pt").read_bytes()
    metrics_size = (run_dir / "metrics.jsonl").stat().st_size

    def limited(limit, *args):
        command = [sys.executable, "-c", LIMITED, str(limit), *map(str, args)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)

    children = [
        limited(1000, "plot", run_dir, "-o", plot),
        limited(metrics_size, "train", "--resume", run_dir, "--set", "train.max_steps=400"),
    ]
    (plot_code, plot_err), (resume_code, resume_err) = map(_finish, children)
    assert plot_code == 1 and f"Error: cannot write {plot}: File too large" in plot_err
    assert resume_code == 1 and f"Error: cannot write {run_dir / 'metrics.jsonl'}: File too large" in resume_err
    assert "Traceback" not in plot_err + resume_err
    assert plot.read_bytes() == good_plot and (run_dir / "last.pt").read_bytes() == last
    assert not _temporaries(tmp_path)


@needs_dev_full
def test_a_stdout_that_cannot_be_written_is_one_sentence(trained_run):
    with open("/dev/full", "wb") as full:
        children = [
            _dinogen("score", trained_run, "rex", close_stdout=True, stdout=None),
            _dinogen("sample", trained_run, "-n", 5, stdout=full),
        ]
        (closed_code, closed_err), (full_code, full_err) = map(_finish, children)
    assert closed_code == 1 and closed_err == "Error: cannot write the results: standard output is closed\n"
    assert full_code == 1 and full_err == "Error: cannot write to standard output: No space left on device\n"


# Class 6: signals and faults in every command

COMMANDS = {  # each command, and a function it calls before it writes anything
    "sample": (["sample", "{run}", "-n", "3"], "dinogen.checkpoint.load_checkpoint"),
    "score": (["score", "{run}", "rex"], "dinogen.checkpoint.load_checkpoint"),
    "evaluate": (["evaluate", "{run}", "--samples", "10"], "dinogen.checkpoint.load_checkpoint"),
    "info": (["info", "{run}"], "dinogen.checkpoint.load_checkpoint"),
    "plot": (["plot", "{run}", "-o", "{tmp}/loss.png"], "dinogen.plot.read_metrics"),
    "export": (["export", "{run}", "-o", "{tmp}/model.onnx"], "dinogen.export.load_checkpoint"),
    "train": (["train", "-c", "tiny", "--data", "{names}", "-o", "{tmp}/new"], "dinogen.run.Run._read_data"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_every_command_stops_on_a_signal_with_its_status(trained_run, names_file, tmp_path, monkeypatch, command, sig,
                                                        code):  # fmt: skip
    args, target = COMMANDS[command]

    def interrupted(*args, **kwargs):
        if sig == signal.SIGINT:
            raise KeyboardInterrupt  # what Python's SIGINT handler raises
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)  # else the kill ends the test run
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises here
        pytest.fail("SIGTERM did not stop the command")

    monkeypatch.setattr(target, interrupted)
    before = signal.getsignal(signal.SIGTERM)
    result = invoke(*(arg.format(run=trained_run, names=names_file, tmp=tmp_path) for arg in args))
    assert result.exit_code == code, result.output
    assert result.output == "" and signal.getsignal(signal.SIGTERM) == before
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_sample_writes_a_file_leaves_no_temporary(trained_run, tmp_path, monkeypatch):
    out = tmp_path / "names.txt"
    out.write_text("precious\n")

    def stopped_half_way(records, file, fmt, **options):  # options: the columns
        file.write("half\n")
        assert _temporaries(tmp_path)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

    monkeypatch.setattr("dinogen.formats.write_names", stopped_half_way)
    result = invoke("sample", trained_run, "-n", 5, "-o", out)
    assert result.exit_code == 143 and result.output == ""
    assert out.read_text() == "precious\n" and not _temporaries(tmp_path)


def test_real_signals_stop_each_command_cleanly(trained_run, tmp_path):
    """SIGINT/SIGTERM sent to child processes of each command, in the middle of real work."""
    out = tmp_path / "names.txt"
    big = ["-n", 10**8, "--batch-size", 1000]
    children = {
        "sample": (_dinogen("sample", trained_run, *big), signal.SIGINT),
        "sample -o": (_dinogen("sample", trained_run, *big, "-o", out), signal.SIGTERM),
        "score": (_dinogen("score", trained_run, "--file", "-", stdin=subprocess.PIPE), signal.SIGTERM),
        "evaluate": (_dinogen("evaluate", trained_run, "--data", "-", "--samples", 10**5, stdin=subprocess.PIPE),
                     signal.SIGINT),
        "train": (_dinogen("train", "-c", "tiny", "--data", "-", "-o", tmp_path / "run", stdin=subprocess.PIPE),
                  signal.SIGTERM),
    }  # fmt: skip
    try:
        for name, (child, sig) in children.items():
            if child.stdin:
                assert child.poll() is None, (name, child.communicate())
                child.stdin.write(STDIN_NAMES)  # returns once the command is reading its names: mid-command
                child.stdin.flush()
            elif name == "sample":
                assert child.stdout.readline().strip()  # names are streaming
            else:
                wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".names.txt.*.tmp")), TIMEOUT)
            child.send_signal(sig)
        for name, (child, sig) in children.items():
            code, stderr = _finish(child)
            assert code == 128 + sig, (name, stderr)
            assert "Traceback" not in stderr and "Aborted" not in stderr, (name, stderr)
    finally:
        for child, _ in children.values():
            child.kill()
    assert not out.exists() and not (tmp_path / "run").exists() and not _temporaries(tmp_path)


def test_a_resumed_run_cuts_metrics_back_to_its_checkpoint(trained_run, tmp_path):
    """A kill -9 after metrics.jsonl got an evaluation but before last.pt did: resuming must not log it twice."""
    run_dir = _copy_run(trained_run, tmp_path)
    with open(run_dir / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 210, "train_loss": 1.0}\n{"step": 22')  # a logged step, then a torn line
    result = invoke("train", "--resume", run_dir, "--set", "train.max_steps=220", "-q")
    assert result.exit_code == 0, result.output
    assert _steps(run_dir) == list(range(10, 221, 10))


def test_a_run_stopped_before_its_first_evaluation_is_used_through_its_last_pt(trained_run, tmp_path):
    early = tmp_path / "early"
    early.mkdir()
    shutil.copy(trained_run / "last.pt", early / "last.pt")
    note = f"WARNING: {early} has no best.pt yet (it stopped before its first evaluation); using its last.pt"
    for command in (["sample", early, "-n", 2], ["score", early, "rex"], ["evaluate", early, "--samples", 5]):
        result = invoke(*command)
        assert result.exit_code == 0 and result.stdout and note in result.stderr, command
    result = invoke("info", early, "--format", "json")
    assert json.loads(result.stdout)["checkpoint"] == str(early / "last.pt")


# Class 7: runs that collide


def test_two_trainings_at_once_then_kill_9_and_resume(names_file, tmp_path):
    run_dir = tmp_path / "run"
    first = _dinogen("train", "-c", "tiny", "--data", names_file, "-o", run_dir, "-q",
                     "--set", "train.max_steps=1000000", "--set", "train.eval_every=5")  # fmt: skip
    try:
        wait_for(lambda: (run_dir / "last.pt").exists(), TIMEOUT)
        refusal = f"Error: {run_dir} is in use by another training (PID {first.pid}); wait for it to finish"
        for args in (["-c", "tiny", "--data", names_file, "-o", run_dir, "--overwrite"], ["--resume", run_dir]):
            result = invoke("train", *args)
            assert result.exit_code == 1 and refusal in result.stderr
        time.sleep(0.5)  # a few more evaluations; the kill may land while a checkpoint is written
    finally:
        first.kill()
        first.communicate(timeout=TIMEOUT)
    step = load_checkpoint(run_dir / "last.pt").step
    result = invoke("train", "--resume", run_dir, "--set", f"train.max_steps={step + 10}", "-q")
    assert result.exit_code == 0, result.output  # the kernel let go of the dead training's lock
    steps = _steps(run_dir)
    assert steps == sorted(set(steps)) and steps[-1] == step + 10


def test_a_checkpoint_of_another_run_is_not_resumed(trained_run, tmp_path):
    run_dir = _copy_run(trained_run, tmp_path)
    stranger = load_checkpoint(run_dir / "last.pt")
    stranger.run_id = "0123456789ab"
    save_checkpoint(stranger, run_dir / "last.pt")
    result = invoke("train", "--resume", run_dir)
    assert result.exit_code == 1 and f"{run_dir / 'last.pt'} belongs to another run (run 0123456789ab)" in result.stderr


def test_a_second_training_gets_a_new_directory_and_commands_use_the_latest(names_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for directory in ("tiny", "tiny-2"):
        result = invoke("train", "-c", "tiny", "--data", names_file, "--set", "train.max_steps=2")
        assert result.exit_code == 0 and f"run directory checkpoints/{directory}" in result.stderr
    result = invoke("sample", "-n", 2)
    assert result.exit_code == 0 and len(result.stdout.split()) == 2
    assert "using checkpoints/tiny-2, the latest of 2 runs" in result.stderr
    assert invoke("plot").exit_code == 0 and (tmp_path / "checkpoints" / "tiny-2" / "loss.png").exists()
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", "checkpoints/tiny")
    assert result.exit_code == 1 and "already holds a run" in result.stderr  # -o keeps refusing


# Class 9: small things a new user met


def test_global_options_work_after_the_command(trained_run, names_file):
    result = invoke("train", "-c", "tiny", "--data", names_file, "--dry-run", "-v")
    assert result.exit_code == 0 and "DEBUG: vocabulary of" in result.stderr
    assert invoke("sample", trained_run, "-n", 1, "--debug").exit_code == 0


def test_a_dash_reads_names_from_standard_input(trained_run):
    text = "\n".join(NAMES[:5]) + "\n"
    result = invoke("score", trained_run, "--file", "-", input=text)
    assert result.exit_code == 0 and [line.split("\t")[2] for line in result.stdout.splitlines()] == NAMES[:5]
    likeliest = invoke("sample", trained_run, "--most-likely", "-n", 3).stdout.split()
    result = invoke("sample", trained_run, "--most-likely", "-n", 2, "--exclude", "-", input=likeliest[0])
    assert result.exit_code == 0 and result.stdout.split() == likeliest[1:]
    result = invoke("evaluate", trained_run, "--data", "-", "--samples", 5, input=text)
    assert result.exit_code == 0 and "5 names" in result.stdout and "(standard input)" in result.stdout
    result = invoke("train", "-c", "tiny", "--data", "-", "--dry-run", input="\n".join(NAMES) + "\n")
    assert result.exit_code == 0 and "on 27 names from -" in result.stderr


def test_a_config_files_data_path_is_read_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "names.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "my.yaml").write_text("data:\n  path: names.txt\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "-c", "project/my.yaml", "--print-config")
    assert result.exit_code == 0 and "path: project/names.txt" in result.stdout
    assert invoke("train", "-c", "project/my.yaml", "--dry-run").exit_code == 0
    assert "path: data/dinos.txt" in invoke("train", "-c", "tiny", "--print-config").stdout  # bundled: unchanged


def test_one_name_is_not_names_and_a_missing_resume_is_a_runtime_error(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("raptor\nrex\n")
    result = invoke("train", "-c", "tiny", "--data", two, "--set", "data.val_fraction=0.5", "--dry-run")
    assert result.exit_code == 0 and "on 1 name from" in result.stderr
    result = invoke("train", "--resume", tmp_path / "missing")
    assert result.exit_code == 1 and result.stderr == f"Error: checkpoint {tmp_path / 'missing'} does not exist\n"


def test_the_readme_gives_pytorchs_cpu_install_command():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme


# The last line of defence


@pytest.mark.unexpected_ok
def test_an_unexpected_exception_is_one_sentence_with_a_debug_hint(trained_run, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("dinogen.checkpoint.load_checkpoint", broken)
    result = invoke("info", trained_run)
    assert result.exit_code == 1
    assert result.stderr == "Error: unexpected ZeroDivisionError: boom; run with --debug for the traceback\n"
    assert isinstance(invoke("info", trained_run, "--debug").exception, ZeroDivisionError)
    assert cli.unexpected_error.__name__ == "record"  # the suite's guard (conftest) watches this line
