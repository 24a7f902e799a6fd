"""No value is parsed by a shell: templates x hostile payloads, each run for real, a canary file that must survive."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from search_spaces import SearchSpaceError
from trainables.checks import ConfigError
from trainables.command import CommandSpecError, load_command_spec, render_command, run_command
from trainables.command.template import ENV_PREFIX, SAFE_TEXT, TemplateError, parse_template
from tune_jobs.sweep_command import SweepCommandArgs, job_space

ECHO = "import json, os, sys; json.dump(sys.argv[1:], open(os.environ['REPROTUNE_PARAM_OUT_DIR'] + '/argv.json', 'w'))"
"""The command under test: writes the arguments it received to {out_dir}/argv.json."""


def payloads(canary: Path) -> list[str]:
    c = str(canary)
    return [f"; rm -f {c}; echo ", f"'; rm -f {c}; echo '", f'"; rm -f {c}; echo "', f"$(rm -f {c})", f"`rm -f {c}`",
            f"\nrm -f {c}\n", f"&& rm -f {c}", f"| rm -f {c}", f"> {c}", f"x\\'; rm -f {c} #", "--", "-rf", "--help",
            "*", "~", "$HOME", "${IFS}", "{seed}", "{{tag}}", "%s %d", "a b\tc", "", "'", '"', "\\", "é ✓ \u202e"]


# Templates where a value is one argument; {script} is the path of a file holding ECHO
TEMPLATES = [
    "{python} {script} {tag}",
    "{python} {script} --tag={tag}",
    '{python} {script} "prefix {tag} suffix"',
    "{python} {script} -- {tag}",
    "env X=1 {python} {script} {tag}",
    """sh -c '"$0" "$1" "$2"' {python} {script} {tag}""",
    """bash -ec 'exec "$0" "$@"' {python} {script} {tag}""",
]
# Shapes that slip past any list of interpreters and script options: only the alphabet keeps the value inert
BYPASSES = [
    "{python} -X dev -c 'import sys; {tag}'",   # an option with an argument between the interpreter and -c
    "python3 -W ignore -c {tag}",
    "awk 'BEGIN {{ {tag} }}'",                 # an interpreter no list names
    "perl -I lib -e 'print {tag}'",
    "ruby -r json -e {tag}",
]
# Templates where a free-text {tag} is allowed: the whole argument after a long option, or the environment
FREE_TEXT_TEMPLATES = [
    ("{python} {script} --tag {tag}", lambda p: p),
    ("""sh -c '"$0" "$1" "$2" "$3"' {python} {script} --tag {tag}""", lambda p: p),
    ("""sh -c 'exec "$REPROTUNE_PARAM_PYTHON" "$REPROTUNE_PARAM_SCRIPT" "$REPROTUNE_PARAM_TAG"'""", lambda p: p),
]


def job(tmp_path: Path, command: str, free_text: bool = False, search: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(f"name = 'fuzz'\nworkdir = {json.dumps(str(tmp_path))}\ncommand = {json.dumps(command)}\n"
                    + ("free_text = ['tag']\n" if free_text else "")
                    + f"timeout_s = 30\n[metrics]\nregex = 'never (?P<step>\\\\d+)'\n[params]\ntag = ''\n"
                    + f"script = {json.dumps(str(tmp_path / 'echo.py'))}\n[search]\nseeds = [0]\n{search}")
    return path


def unsafe(payload: str) -> bool:
    return SAFE_TEXT.fullmatch(payload) is None


@pytest.mark.parametrize("template", TEMPLATES + BYPASSES)
def test_a_payload_outside_the_safe_alphabet_is_refused_and_a_safe_one_cannot_touch_the_canary(tmp_path, template):
    (tmp_path / "echo.py").write_text(ECHO)
    canary = tmp_path / "canary"
    canary.write_text("alive")
    spec = load_command_spec(job(tmp_path, template))
    before = set(tmp_path.iterdir())
    refused = 0
    for index, payload in enumerate(payloads(canary) + [f"__import__('os').remove('{canary}')", f"rm -f {canary}"]):
        params = {"tag": payload, "script": str(tmp_path / "echo.py"), "seed": 1}
        if unsafe(payload):
            with pytest.raises(ConfigError, match=r"^value of \{tag\} must be a number, a boolean or text"):
                run_command(spec, params, tmp_path / "runs" / str(index), poll_s=0.01)
            refused += 1
        else:
            try:
                run_command(spec, params, tmp_path / "runs" / str(index), poll_s=0.01)
            except Exception:  # the safe value may be a bad argument for the program; it ran no code of ours
                pass
        assert canary.read_text() == "alive", payload
    assert refused >= 20
    assert set(tmp_path.iterdir()) - before <= {tmp_path / "runs"}  # no file made by a redirection either


@pytest.mark.parametrize("template", BYPASSES)
@pytest.mark.parametrize("route", ["set", "space"])
def test_a_payload_from_set_or_the_space_is_refused_before_anything_runs(tmp_path, template, route):
    canary = tmp_path / "canary"
    canary.write_text("alive")
    payload = f"__import__('os').remove('{canary}')"
    search = f"tag = {{ choice = [\"ok\", {json.dumps(payload)}] }}\n" if route == "space" else ""
    path = job(tmp_path, template, search=search)
    sets = (f"params.tag={json.dumps(payload)}",) if route == "set" else ()
    with pytest.raises(SearchSpaceError, match=r"value of \{tag\} must be a number, a boolean or text"):
        job_space(load_command_spec(path), SweepCommandArgs(job=path, set=sets))
    assert canary.read_text() == "alive"


@pytest.mark.parametrize("template, expected", FREE_TEXT_TEMPLATES, ids=[t for t, _ in FREE_TEXT_TEMPLATES])
def test_every_free_text_payload_arrives_verbatim_and_the_canary_survives(tmp_path, template, expected):
    (tmp_path / "echo.py").write_text(ECHO)
    canary = tmp_path / "canary"
    canary.write_text("alive")
    spec = load_command_spec(job(tmp_path, template, free_text=True))
    before = set(tmp_path.iterdir())
    for index, payload in enumerate(payloads(canary)):
        out = tmp_path / "runs" / str(index)
        run_command(spec, {"tag": payload, "script": str(tmp_path / "echo.py"), "seed": 1}, out, poll_s=0.01)
        received = json.loads((out / "argv.json").read_text())
        assert received[-1] == expected(payload), payload
        assert canary.read_text() == "alive", payload
    assert set(tmp_path.iterdir()) - before == {tmp_path / "runs"}  # no file made by a redirection either


@pytest.mark.parametrize("command", [
    "{python} train.py {tag}", "{python} train.py --tag={tag}", "{python} train.py -t {tag}",
    "sh -c {tag}", "env -S {tag}", "node --eval {tag}", "{python} -X dev -c {tag}", "{tag} --x 1",
    "{python} train.py -- {tag}", "{python} train.py --tag x{tag}",
])
def test_free_text_anywhere_but_after_a_long_option_is_refused_at_load_time(tmp_path, command):
    path = job(tmp_path, command, free_text=True)
    with pytest.raises(CommandSpecError, match=r"placeholder \{tag\} .*(could land inside another program's script|"
                                               r"is inside the script).*\$REPROTUNE_PARAM_TAG"):
        load_command_spec(path)


@pytest.mark.parametrize("command, placeholder", [
    ("""sh -c "echo '{tag}'" """, "tag"),
    ("bash -c 'train --tag {tag}'", "tag"),
    ("/bin/sh -ec 'x={tag}; run \"$x\"'", "tag"),
    ("timeout 5 bash -o pipefail -c 'run {lr} | tee log'", "lr"),
    ("sh -c {script}", "script"),
    ("{python} -c 'import train; train.main({lr})'", "lr"),
    ("python3 -u -c 'print({seed})'", "seed"),
    ("perl -e 'print {tag}'", "tag"),
    ("sh -c -- 'echo {tag}'", "tag"),
    ("env -S 'sh -c run{tag}'", "tag"),
    ("php -r 'echo {tag};'", "tag"),
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
    assert render_command(spec, {"norm": True, "tag": "a_b"}, tmp_path, "r") == [
        sys.executable, "train.py", "--norm", "rms", "--tag", "a_b"]
    assert render_command(spec, {"norm": False, "tag": ""}, tmp_path, "r") == [sys.executable, "train.py", "--tag", ""]
    with pytest.raises(ValueError, match=r"value of \{tag\} holds a NUL byte"):
        render_command(spec, {"norm": False, "tag": "a\0b"}, tmp_path, "r")
