"""No value is parsed by a shell: templates x hostile payloads, each run for real, a canary file that must survive."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from trainables.command import CommandSpecError, load_command_spec, render_command, run_command
from trainables.command.template import ENV_PREFIX, TemplateError, parse_template

ECHO = "import json, os, sys; json.dump(sys.argv[1:], open(os.environ['REPROTUNE_PARAM_OUT_DIR'] + '/argv.json', 'w'))"
"""The command under test: writes the arguments it received to {out_dir}/argv.json."""


def payloads(canary: Path) -> list[str]:
    c = str(canary)
    return [f"; rm -f {c}; echo ", f"'; rm -f {c}; echo '", f'"; rm -f {c}; echo "', f"$(rm -f {c})", f"`rm -f {c}`",
            f"\nrm -f {c}\n", f"&& rm -f {c}", f"| rm -f {c}", f"> {c}", f"x\\'; rm -f {c} #", "--", "-rf", "--help",
            "*", "~", "$HOME", "${IFS}", "{seed}", "{{tag}}", "%s %d", "a b\tc", "", "'", '"', "\\", "é ✓ \u202e"]


# (template, what the last argument must be for a payload p); {script} is the path of a file holding ECHO
TEMPLATES = [
    ("{python} {script} {tag}", lambda p: p),
    ("{python} {script} --tag={tag}", lambda p: f"--tag={p}"),
    ('{python} {script} "prefix {tag} suffix"', lambda p: f"prefix {p} suffix"),
    ("{python} {script} -- {tag}", lambda p: p),
    ("env X=1 {python} {script} {tag}", lambda p: p),
    ("""sh -c '"$0" "$1" "$2"' {python} {script} {tag}""", lambda p: p),
    ("""bash -ec 'exec "$0" "$@"' {python} {script} {tag}""", lambda p: p),
    ("""sh -c 'exec "$REPROTUNE_PARAM_PYTHON" "$REPROTUNE_PARAM_SCRIPT" "$REPROTUNE_PARAM_TAG"'""", lambda p: p),
]


def job(tmp_path: Path, command: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(f"name = 'fuzz'\nworkdir = {json.dumps(str(tmp_path))}\ncommand = {json.dumps(command)}\n"
                    f"timeout_s = 30\n[metrics]\nregex = 'never (?P<step>\\\\d+)'\n[params]\ntag = ''\n")
    return path


@pytest.mark.parametrize("template, expected", TEMPLATES, ids=[t for t, _ in TEMPLATES])
def test_every_payload_arrives_verbatim_and_the_canary_survives(tmp_path, template, expected):
    (tmp_path / "echo.py").write_text(ECHO)
    canary = tmp_path / "canary"
    canary.write_text("alive")
    spec = load_command_spec(job(tmp_path, template))
    before = set(tmp_path.iterdir())
    for index, payload in enumerate(payloads(canary)):
        out = tmp_path / "runs" / str(index)
        run_command(spec, {"tag": payload, "script": str(tmp_path / "echo.py"), "seed": 1}, out, poll_s=0.01)
        received = json.loads((out / "argv.json").read_text())
        assert received[-1] == expected(payload), payload
        assert canary.read_text() == "alive", payload
    assert set(tmp_path.iterdir()) - before == {tmp_path / "runs"}  # no file made by a redirection either


@pytest.mark.parametrize("command, placeholder", [
    ("""sh -c "echo '{tag}'" """, "tag"),
    ("bash -c 'train --tag {tag}'", "tag"),
    ("/bin/sh -ec 'x={tag}; run \"$x\"'", "tag"),
    ("timeout 5 bash -o pipefail -c 'run {lr} | tee log'", "lr"),
    ("sh -c {script}", "script"),
    ("{python} -c 'import train; train.main({lr})'", "lr"),
    ("python3 -u -c 'print({seed})'", "seed"),
    ("perl -e 'print {tag}'", "tag"),
])
def test_a_placeholder_inside_a_script_is_refused_at_load_time_naming_file_and_placeholder(tmp_path, command,
                                                                                           placeholder):
    path = job(tmp_path, command)
    with pytest.raises(CommandSpecError) as error:
        load_command_spec(path)
    message = str(error.value)
    assert message.startswith(f"{path}: job 'fuzz': placeholder {{{placeholder}}} is inside the script")
    assert f"${ENV_PREFIX}{placeholder.upper()}" in message and "positional parameter" in message


@pytest.mark.parametrize("command, message", [
    ("run {lr!r}", r"placeholder \{lr!r\} must be a plain name"),
    ("run {lr:.3f}", r"placeholder \{lr:.3f\} must be a plain name"),
    ("run {spec.__class__}", r"placeholder \{spec.__class__\} must be a plain name"),
    ("run {0}", r"placeholder \{0\} must be a plain name"),
    ("run {lr", "expected '}' before end of string in '{lr'"),
    ("run 'unclosed", "cannot be split into arguments: No closing quotation"),
    ("", "command is empty"),
    ("run --norm={use_rmsnorm}", r"flag placeholder \{use_rmsnorm\} must be a whole argument"),
])
def test_malformed_templates_are_refused(command, message):
    with pytest.raises(TemplateError, match=message):
        parse_template(command, {"use_rmsnorm": "--use-rmsnorm"}, "job 'x'")


def test_scripts_without_placeholders_and_values_as_positional_parameters_are_allowed():
    for command in ("""sh -c 'run "$1" | tee log' sh {tag}""", "bash -lc 'run \"$REPROTUNE_PARAM_TAG\"'",
                    "sh -c 'echo {{literal braces}}'", "{python} -m train --code {code}", "sh {script} {tag}"):
        parse_template(command, {}, "job 'x'")


def test_flags_render_as_their_words_or_nothing_and_a_nul_byte_is_refused(tmp_path):
    path = job(tmp_path, "{python} train.py {norm} --tag {tag}")
    path.write_text(path.read_text() + "[flags]\nnorm = '--norm rms'\n")
    spec = load_command_spec(path)
    assert render_command(spec, {"norm": True, "tag": "a b"}, tmp_path, "r") == [
        sys.executable, "train.py", "--norm", "rms", "--tag", "a b"]
    assert render_command(spec, {"norm": False, "tag": ""}, tmp_path, "r") == [sys.executable, "train.py", "--tag", ""]
    with pytest.raises(ValueError, match=r"value of \{tag\} holds a NUL byte"):
        render_command(spec, {"norm": False, "tag": "a\0b"}, tmp_path, "r")
