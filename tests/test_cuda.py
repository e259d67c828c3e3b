"""What only a CUDA GPU can check: these run where torch sees a GPU and skip elsewhere.

The same code paths run on the CPU in the other tests (fixed-shape sampling, the counter-based
random numbers, mixed precision choices); here they run on the device they are meant for.
"""

import pytest
import torch
from click.testing import CliRunner

from dinogen.cli import main
from dinogen.sample import Generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_the_gpu_samples_the_cpu_stream(trained_run):
    """Fixed-shape batches on the GPU draw the CPU's names: the random numbers depend on (seed, i, step) only."""
    cpu = Generator.from_checkpoint(trained_run, device="cpu").sample(2000, seed=3)
    gpu = Generator.from_checkpoint(trained_run, device="cuda")
    assert gpu.fixed_shapes and gpu.default_batch_size > 4096
    same = sum(a == b for a, b in zip(cpu, gpu.sample(2000, seed=3), strict=True))
    assert same >= 1990  # a draw that lands within float rounding of a boundary may differ


def test_scores_agree_across_devices(trained_run):
    names = Generator.from_checkpoint(trained_run, device="cpu").sample(50, seed=0)
    on_cpu = Generator.from_checkpoint(trained_run, device="cpu").score(names)
    on_gpu = Generator.from_checkpoint(trained_run, device="cuda").score(names)
    for a, b in zip(on_cpu, on_gpu, strict=True):
        assert a.log_prob == pytest.approx(b.log_prob, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_training_on_the_gpu(names_file, tmp_path, precision):
    args = ["train", "-c", "tiny", "--data", str(names_file), "-o", str(tmp_path / "run"), "-q", "--device", "cuda"]
    result = CliRunner().invoke(main, [*args, "--set", f"train.precision={precision}"])
    assert result.exit_code == 0, result.output
    sampled = CliRunner().invoke(main, ["sample", str(tmp_path / "run"), "-n", "5", "--device", "cuda"])
    assert sampled.exit_code == 0 and len(sampled.stdout.splitlines()) == 5


def test_auto_batch_on_the_gpu_and_a_resume_on_the_cpu(names_file, tmp_path):
    """auto takes gpu_batch_size on the GPU; the run records it, so a resume on the CPU replays the same batches."""
    run_dir = tmp_path / "run"
    args = ["train", "-c", "tiny", "--data", str(names_file), "-o", str(run_dir), "-q", "--device", "cuda"]
    settings = ["--set", "train.batch_size=auto", "--set", "train.base_batch_size=4"]
    settings += ["--set", "train.gpu_batch_size=16"]
    result = CliRunner().invoke(main, [*args, *settings])
    assert result.exit_code == 0, result.output
    assert "batch_size: 16\n" in (run_dir / "config.yaml").read_text()
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--device", "cpu", "-q",
                                        "--set", "train.max_steps=30"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
