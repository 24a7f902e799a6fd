"""A command template as an argv, split once: no value is ever parsed by a shell.

The template is split into arguments with ``shlex.split`` *before* any value is substituted, so
each argument is fixed by the template alone. A placeholder is either a whole argument (its value
becomes exactly one argument, whatever it holds: spaces, quotes, ``;``, ``$()``, newlines) or a
literal part of one (``--tag={tag}``: the value is pasted into that one argument). A ``[flags]``
placeholder must be a whole argument: the flag's words when true, nothing when false.

Values are safe by construction: a placeholder's value is a number, a boolean, or text from the
safe alphabet (letters, digits and ``._-/+=:,``: no space, quote, ``;``, ``$``, backquote, brace,
redirection or newline), whatever template it lands in. A parameter the job file declares as free text
(``free_text = ["note"]``) may hold anything, and may appear only as the whole argument after a long
option (``--note {note}``) that runs no code; anywhere else (a script's text, a positional argument, after
a short option such as ``-c``, ``-e`` or ``-S``) the file is refused when loaded.

A template that runs an inline script (``sh -c '...'``, ``bash -c``, ``python -c``, ``perl -e``...)
must not put a placeholder inside the script text either (a second guard; the alphabet is the first).
Such a template is refused when the job file is loaded. The values reach a script safely as
positional parameters (``sh -c 'train --tag "$1"' sh {tag}``: ``{tag}`` is a whole argument) or as
environment variables: every placeholder's value is also in the command's environment as
``REPROTUNE_PARAM_<NAME>`` (``$REPROTUNE_PARAM_TAG``, ``$REPROTUNE_PARAM_OUT_DIR``, ...).
"""

from __future__ import annotations

import math
import re
import shlex
import string
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Mapping

from trainables.checks import ConfigError

ENV_PREFIX = "REPROTUNE_PARAM_"
"""Each placeholder's value is in the command's environment as ``REPROTUNE_PARAM_<NAME upper-cased>``
(a prefix of its own: a parameter named ``reference_dir`` must not set the project's ``REPROTUNE_REFERENCE_DIR``)."""
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})
"""Programs whose ``-c`` (alone or in a cluster such as ``-ec``) takes a script."""
INLINE_CODE_OPTIONS = {"python": ("-c",), "perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "-p")}
"""Other interpreters (by the start of the program's name) and their inline-code options."""
INLINE_CODE_OPTIONS.update({"php": ("-r",), "lua": ("-e",), "Rscript": ("-e",), "env": ("-S", "--split-string")})
SAFE_TEXT = re.compile(r"[A-Za-z0-9._\-/+=:,]*")
"""Text a placeholder's value may hold unless its parameter is declared free text."""
BUILT_IN = frozenset({"python", "out_dir", "run_name"})
"""Placeholders whose values the project makes (this interpreter, the run's folder and name), not a user."""
CODE_LONG_OPTIONS = frozenset({"--eval", "--command", "--exec", "--execute", "--source", "--split-string",
                               "--init-file", "--rcfile", "--print", "--script", "--expression", "--program"})
"""Long options whose value is code (node --eval, env --split-string, ...): free text never follows one."""
_PYTHON_PLACEHOLDER = "python"
"""``{python}`` as a whole argument names this interpreter."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ConfigError):
    """A command template that cannot be run without a shell parsing a value; names the placeholder."""


@dataclass(frozen=True)
class Argument:
    """One argument of the template: literal text and placeholder names, in order."""

    parts: tuple[tuple[str, bool], ...]
    """(text, is_placeholder) pieces; a placeholder's text is its name."""

    @property
    def placeholder(self) -> str | None:
        """The placeholder's name when the argument is one placeholder and nothing else."""
        return self.parts[0][0] if len(self.parts) == 1 and self.parts[0][1] else None

    @property
    def names(self) -> list[str]:
        return [text for text, is_name in self.parts if is_name]

    @property
    def literal(self) -> str:
        """The argument as written, placeholders as ``{name}``."""
        return "".join(f"{{{text}}}" if is_name else text for text, is_name in self.parts)


def placeholder_names(text: str, where: str) -> list[str]:
    """The ``{name}`` fields of a format string, in order.

    Raises:
        TemplateError: a field that is not a plain identifier (``{}``, ``{0}``, ``{a.b}``, ``{a[0]}``,
            ``{a!r}``, ``{a:>5}``), or unbalanced braces; names ``where`` and the field.
    """
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as error:
        raise TemplateError(f"{where}: {error} in {text!r} (write a literal brace as {{{{ or }}}})") from error
    names = []
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not _NAME.fullmatch(name) or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"{where}: placeholder {shown} must be a plain name such as {{lr}}")
        names.append(name)
    return names


def parse_template(command: str, flags: Mapping[str, str], where: str,
                   free_text: frozenset[str] = frozenset()) -> tuple[Argument, ...]:
    """Split ``command`` into arguments once and check that no placeholder reaches a script's text.

    Args:
        command: the template (shell-like quoting; newlines are spaces).
        flags: the job's ``[flags]`` placeholders.
        where: how messages name the template (the job file and its name).
        free_text: parameters declared free text (see the module doc for where they may stand).

    Raises:
        TemplateError: unbalanced quotes, a malformed placeholder, a flag inside a larger argument, a
            placeholder inside the inline script of ``sh -c`` and the like (names it and the safe forms),
            or a free-text placeholder anywhere but after a long option.
    """
    if not isinstance(command, str):
        raise TemplateError(f"{where}: command must be a string, got {command!r}")
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise TemplateError(f"{where}: command cannot be split into arguments: {error}") from error
    if not words:
        raise TemplateError(f"{where}: command is empty")
    arguments = []
    for word in words:
        placeholder_names(word, where)  # refuses a malformed field
        parts = []
        for literal, name, _, _ in string.Formatter().parse(word):
            if literal:
                parts.append((literal, False))
            if name is not None:
                parts.append((name, True))
        argument = Argument(tuple(parts) or (("", False),))
        for name in argument.names:
            if name in flags and argument.placeholder != name:
                raise TemplateError(f"{where}: flag placeholder {{{name}}} must be a whole argument, "
                                    f"not part of {argument.literal!r}")
        arguments.append(argument)
    _refuse_script_placeholders(arguments, where)
    _refuse_free_text_outside_options(arguments, free_text, where)
    return tuple(arguments)


def _refuse_free_text_outside_options(arguments: list[Argument], free_text: frozenset[str], where: str) -> None:
    """A free-text placeholder is the whole argument after a long option that runs no code, nowhere else."""
    for index, argument in enumerate(arguments):
        for name in set(argument.names) & free_text:
            before = arguments[index - 1].literal if index > 0 else ""
            if (argument.placeholder == name and before.startswith("--") and before != "--"
                    and "=" not in before and before not in CODE_LONG_OPTIONS):
                continue
            raise TemplateError(
                f"{where}: free-text placeholder {{{name}}} in {argument.literal!r} could land inside another "
                f"program's script; it may only be the whole argument after a long option (--{name} {{{name}}}), "
                f"or be read from the environment (${ENV_PREFIX}{name.upper()})")


def _inline_options(argument: Argument) -> tuple[str, ...] | None:
    """The inline-code options of the program this argument names, or None if it names no interpreter."""
    if argument.placeholder == _PYTHON_PLACEHOLDER:
        return INLINE_CODE_OPTIONS["python"]
    if argument.names:
        return None
    program = PurePosixPath(argument.literal).name
    if program in SHELLS:
        return ("-c",)
    return next((options for prefix, options in INLINE_CODE_OPTIONS.items() if program.startswith(prefix)), None)


def _takes_script(option: str, options: tuple[str, ...]) -> bool:
    if option in options:
        return True
    return options == ("-c",) and re.fullmatch(r"[-+][A-Za-z]*c[A-Za-z]*", option) is not None  # sh -ec, bash -lc


def _refuse_script_placeholders(arguments: list[Argument], where: str) -> None:
    for index, argument in enumerate(arguments):
        options = _inline_options(argument)
        if options is None:
            continue
        position = index + 1
        while position < len(arguments) and arguments[position].literal.startswith(("-", "+")):
            option = arguments[position].literal
            after = position + 2 if arguments[position + 1:position + 2] and arguments[position + 1].literal == "--" \
                else position + 1  # `sh -c -- '...'`: the script follows the end of options
            if _takes_script(option, options) and after < len(arguments):
                script = arguments[after]
                if script.names:
                    raise TemplateError(
                        f"{where}: placeholder {{{script.names[0]}}} is inside the script of "
                        f"`{argument.literal} {option}`, where the interpreter would parse its value as code; "
                        f"pass it as a positional parameter (sh -c '... \"$1\" ...' sh {{{script.names[0]}}}) or "
                        f"read it from the environment (${ENV_PREFIX}{script.names[0].upper()})")
                break
            position += 2 if option in ("-o", "+o", "-O", "+O") else 1


def render_arguments(arguments: tuple[Argument, ...], values: Mapping[str, Any], flags: Mapping[str, str],
                     free_text: frozenset[str] = frozenset()) -> list[str]:
    """The argv: each whole-argument placeholder becomes one argument holding its value verbatim (a
    flag: its words when the value is true, nothing when false), each other argument its text with
    the values pasted in.

    Raises:
        KeyError: a placeholder without a value (the message names them).
        ConfigError: a NaN or infinite value, one holding a NUL byte (no argv can carry one), or text
            outside the safe alphabet for a parameter not declared free text (``safe_value``).
    """
    missing = sorted({name for argument in arguments for name in argument.names} - set(values))
    if missing:
        raise KeyError(f"needs a value for {', '.join(missing)}")
    argv: list[str] = []
    for argument in arguments:
        name = argument.placeholder
        if name in flags:
            argv.extend(shlex.split(flags[name]) if is_true(values[name]) else [])
            continue
        argv.append("".join(safe_value(values[text], text, free_text) if is_name else text
                            for text, is_name in argument.parts))
    return argv


def safe_value(value: Any, name: str, free_text: frozenset[str] = frozenset()) -> str:
    """A placeholder's value as text, checked to be a number, a boolean or safe-alphabet text
    (``SAFE_TEXT``) unless ``name`` is free text or a project-made value (``BUILT_IN``).

    Raises:
        ConfigError: names the placeholder, the value and the alphabet (see also ``value_text``).
    """
    text = value_text(value, name)
    if name in free_text or name in BUILT_IN or isinstance(value, (bool, int, float)):
        return text
    if not isinstance(value, str) or not SAFE_TEXT.fullmatch(text):
        raise ConfigError(f"value of {{{name}}} must be a number, a boolean or text of letters, digits and "
                          f"._-/+=:, (declare it in free_text = [...] for anything else), got {value!r}")
    return text


def is_true(value: Any) -> bool:
    """Whether a flag's value turns it on (False, 0, '', None, 'false', 'False' do not)."""
    return value not in (None, False, "", 0, "false", "False")


def value_text(value: Any, name: str) -> str:
    """A placeholder's value as text (``str``).

    Raises:
        ConfigError: a NaN or infinite float, or text holding a NUL byte (names the placeholder).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"value of {{{name}}} must be a finite number, got {value!r}")
    text = str(value)
    if "\0" in text:
        raise ConfigError(f"value of {{{name}}} holds a NUL byte, which no command line can carry: {text!r}")
    return text


def environment(values: Mapping[str, Any]) -> dict[str, str]:
    """Every placeholder's value as ``REPROTUNE_PARAM_<NAME>`` (for a script that reads its values from
    the environment)."""
    return {f"{ENV_PREFIX}{name.upper()}": value_text(value, name) for name, value in values.items() if _NAME.fullmatch(name)}
