"""Another repository's training command as a trainable: a job file, a runner, no Ray or MLflow."""

from trainables.command.runner import BadMetrics, CommandFailed, CommandResult, render_command, run_command
from trainables.command.spec import CommandSpec, CommandSpecError, load_command_spec

__all__ = ["BadMetrics", "CommandFailed", "CommandResult", "CommandSpec", "CommandSpecError", "load_command_spec",
           "render_command", "run_command"]
