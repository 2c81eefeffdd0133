"""Bad input ends with one line, a distinct exit code, the input untouched and nothing left behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dainctl.cli import main


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *, after_start: bool = False) -> str:
    """The error is one line. Before a run starts it is all there is on stderr; a run that fails
    half-way has already printed its plan and progress, and the error is its last line."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dainctl: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    if not after_start:
        assert len(lines) == 1, err
    assert "Traceback" not in err
    return errors[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_missing_input(capsys, tmp_path):
    code, out, err = run_cli(capsys, "interpolate", tmp_path / "nope.mp4", tmp_path / "out.mp4")
    assert code == 3
    assert "not found" in one_error_line(err)
    assert out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, name",
    [(b"", "empty.mp4"), (os.urandom(4096), "random.mp4"), (b"not a video at all\n", "text.mkv")],
)
def test_not_a_video(capsys, tmp_path, content, name):
    bad = tmp_path / name
    bad.write_bytes(content)
    before = digest(bad)
    code, _, err = run_cli(capsys, "interpolate", bad, tmp_path / "out.mp4")
    assert code == 3
    one_error_line(err)
    assert digest(bad) == before
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "frames").mkdir()
    code, _, err = run_cli(capsys, "interpolate", tmp_path / "frames", tmp_path / "out")
    assert code == 3
    one_error_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--factor", "1"], "--factor"),
        (["--factor", "abc"], "factor"),
        (["--fps", "0"], "frame rate"),
        (["--fps", "fast"], "frame rate"),
        (["--factor", "2", "--fps", "60"], "either"),
        (["--engine", "magic"], "engine"),
        (["--device", "tpu"], "device"),
        (["--profile", "turbo"], "--profile"),
        (["--engine", "dain", "--profile", "fast"], "weight-free engine"),
        (["--no-such-flag"], "no-such-flag"),
    ],
)
def test_bad_options(capsys, tmp_path, clip_factory, args, needle):
    clip = clip_factory()
    code, _, err = run_cli(capsys, "interpolate", clip, tmp_path / "out.mp4", *args)
    assert code == 2
    assert needle in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_bad_yaml_config(capsys, tmp_path, clip_factory):
    config = tmp_path / "bad.yaml"
    config.write_text("crf: [1, 2\n")
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4", "--config", config)
    assert code == 2
    assert "YAML" in one_error_line(err)


def test_unknown_config_key(capsys, tmp_path, clip_factory):
    config = tmp_path / "c.yaml"
    config.write_text("crff: 20\n")
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4", "--config", config)
    assert code == 2
    assert "crff" in one_error_line(err)


def test_unreadable_config(capsys, tmp_path, clip_factory):
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4", "--config", tmp_path / "missing.yaml")
    assert code == 2
    one_error_line(err)


def test_output_exists_without_overwrite(capsys, tmp_path, clip_factory):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), out)
    assert code == 4
    assert "--overwrite" in one_error_line(err)
    assert out.read_bytes() == b"precious"


def test_output_same_as_input(capsys, tmp_path, clip_factory):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(clip_factory().read_bytes())
    before = digest(clip)
    code, _, err = run_cli(capsys, "interpolate", clip, clip, "--overwrite")
    assert code == 4
    assert "input" in one_error_line(err)
    assert digest(clip) == before


def test_output_folder_missing(capsys, tmp_path, clip_factory):
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "no" / "such" / "out.mp4")
    assert code == 4
    one_error_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_folder_not_writable(capsys, tmp_path, clip_factory):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, "interpolate", clip_factory(), locked / "out.mp4")
    finally:
        locked.chmod(0o755)
    assert code == 4
    one_error_line(err)


def test_dain_without_weights(capsys, tmp_path, clip_factory):
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4", "--engine", "dain")
    assert code == 5
    line = one_error_line(err)
    assert "--weights" in line and "dainctl convert" in line


def test_cuda_without_gpu(capsys, tmp_path, clip_factory):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4", "--device", "cuda")
    assert code == 5
    assert "CUDA" in one_error_line(err)


def test_engine_failure_removes_temporary_output(capsys, tmp_path, clip_factory, monkeypatch):
    from dainctl.engines import flow

    def broken(self, jobs, motions, window=None):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(flow.FlowEngine, "render", broken)
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4")
    assert code == 70
    assert "engine exploded" in one_error_line(err, after_start=True)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_removes_temporary_output(capsys, tmp_path, clip_factory, monkeypatch):
    from dainctl.engines import flow

    def interrupted(self, jobs, motions, window=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(flow.FlowEngine, "render", interrupted)
    code, _, err = run_cli(capsys, "interpolate", clip_factory(), tmp_path / "out.mp4")
    assert code == 130
    one_error_line(err, after_start=True)
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_traceback(tmp_path):
    env = {**os.environ, "DAINCTL_DEBUG": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dainctl", "interpolate", str(tmp_path / "nope.mp4")],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr


def test_console_script_and_version():
    proc = subprocess.run([sys.executable, "-m", "dainctl", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("dainctl ")
    assert "torch" in proc.stdout and "PyAV" in proc.stdout and "CUDA" in proc.stdout


@pytest.mark.parametrize("flags, expected", [([], "auto"), (["--profile", "fast"], "fast"), (["--profile", "high"], "high")])
def test_profile_reaches_the_weight_free_engine(capsys, tmp_path, clip_factory, monkeypatch, flags, expected):
    from dainctl.engines import flow

    created = []
    original = flow.FlowEngine.__init__

    def recording_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self.profile)

    monkeypatch.setattr(flow.FlowEngine, "__init__", recording_init)
    code, _, err = run_cli(capsys, "slowmo", clip_factory(frames=3), tmp_path / "out.mp4", "--quiet", *flags)
    assert code == 0, err
    assert created == [expected]


def test_help_and_a_missing_input_answer_before_torch_is_loaded(tmp_path):
    # The CLI's names and checks come before the pipeline and the engines: `--help`, a bad option or a
    # missing input answer at once, without waiting about a second for torch to load.
    code = (
        "import sys\n"
        "from dainctl.cli import main\n"
        f"codes = [main(['--help']), main(['interpolate', {str(tmp_path / 'missing.mp4')!r}]),"
        f" main(['slowmo', {str(tmp_path / 'missing.mp4')!r}, '--factor', '1'])]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 3, 2] False"


def test_the_program_skips_the_collections_of_its_exit_and_an_in_process_call_does_not(tmp_path):
    # Run as the program (no argv: the process's own command line), main freezes what is left for the
    # interpreter's shutdown, which would otherwise run the cyclic collector over all of torch, and ends
    # the process itself. A call with argv (tests, embedding) leaves the collector as it was and returns.
    code = (
        "import atexit, gc, sys\n"
        "from dainctl.cli import main\n"
        f"returned = main(['interpolate', {str(tmp_path / 'missing.mp4')!r}])\n"
        "print('in process', returned, gc.get_freeze_count())\n"
        "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0))\n"
        f"sys.argv = ['dainctl', 'interpolate', {str(tmp_path / 'missing.mp4')!r}]\n"
        "main()\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip().splitlines() == ["in process 3 0", "at exit True"]


@pytest.mark.parametrize("command, code", [(["interpolate", "{missing}"], 3), (["--version"], 0)])
def test_the_process_ends_after_its_threads_exit_handlers_and_output(tmp_path, command, code):
    # The CLI ends its process without the interpreter's teardown (cli._end_process), but only after
    # what that teardown would have done first: a thread that is not a daemon is waited for, atexit
    # handlers run, and what was written to stdout and stderr without a flush arrives.
    script = f"""
import atexit, sys, threading, time
from pathlib import Path
tmp = Path({str(tmp_path)!r})
def late():
    time.sleep(0.3)
    (tmp / "thread").write_text("done")
threading.Thread(target=late).start()
atexit.register(lambda: (tmp / "atexit").write_text("ran"))
sys.stdout.write("unflushed stdout")
sys.stderr.write("unflushed stderr ")
sys.argv = ["dainctl", *{[arg.format(missing=str(tmp_path / "nope.mp4")) for arg in command]!r}]
from dainctl.cli import main
main()
raise SystemExit(99)  # not reached: main() ends the process
"""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}  # buffered, as by default
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == code, proc.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert proc.stdout.startswith("unflushed stdout") and proc.stderr.startswith("unflushed stderr")
    if code == 0:
        assert "dainctl " in proc.stdout
