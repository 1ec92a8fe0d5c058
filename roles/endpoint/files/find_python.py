"""Finds the Python that an installed globus-compute-endpoint command runs, without running anything.

    <any python3> find_python.py EXECUTABLE

Prints the interpreter's path. The command's first line may name it (a
console script: `#!/x/bin/python`, `#!/usr/bin/env python3`); a /bin/sh
script is read for the line that execs the next program: uv's trampoline
(written when the path holds a space or is longer than 127 bytes) or an OS
package's wrapper, whose plain NAME=value assignments are applied. That
program is followed in turn. Anything else (a command substitution, a
variable set elsewhere, a binary) exits 1 with one line saying what the
command runs; 2 when EXECUTABLE does not exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys

PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")
SHELLS = {"sh", "bash", "dash", "ksh", "zsh"}
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# Wrappers of wrappers; a loop is not followed forever.
DEPTH = 8


class NotFound(Exception):
    pass


def expand(word: str, names: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: names.get(m.group(1) or m.group(2), m.group(0)), word)


def script_lines(path: str, who: str) -> list[str]:
    with open(path, "rb") as f:
        head = f.read(8192).decode(errors="replace")
    if not head.startswith("#!"):
        raise NotFound(f"{who} is not a script")
    return head.splitlines()


def exec_target(who: str, lines: list[str]) -> str:
    """The program the shell script execs, with the script's own assignments applied."""
    names: dict[str, str] = {}
    for line in lines[1:]:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["export"]:
            words = words[1:]
        if len(words) == 1 and (assigned := ASSIGNMENT.match(words[0])):
            names[assigned.group(1)] = expand(assigned.group(2), names)
            continue
        if words[:1] != ["exec"]:
            continue
        program = next((w for w in words[1:] if not w.startswith("-")), "")
        target = expand(program, names)
        if not target.startswith("/") or "$" in target or "`" in target:
            raise NotFound(f"{who} runs {program}")
        return target
    raise NotFound(f"{who} execs no program it names")


def find(executable: str) -> str:
    path = executable
    for _level in range(DEPTH):
        if PYTHON.match(os.path.basename(path)):
            return path
        who = "it" if path == executable else path
        lines = script_lines(os.path.realpath(path), who)
        words = lines[0][2:].split()
        if not words:
            raise NotFound(f"{who} names no program on its first line")
        program = words[0]
        if os.path.basename(program) == "env":
            given = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "")
            program = shutil.which(given) or given
        if PYTHON.match(os.path.basename(program)):
            return program
        if os.path.basename(program) not in SHELLS:
            raise NotFound(f"{who} is run by {program}")
        path = exec_target(who, lines)
    raise NotFound(f"it goes through more than {DEPTH} wrappers")


if __name__ == "__main__":
    given = sys.argv[1]
    if not os.path.exists(given):
        sys.exit(2)
    try:
        found = find(given)
        if not os.access(found, os.X_OK):
            raise NotFound(f"{found} is not an executable")
    except (NotFound, OSError) as err:
        print(f"no Python found for {given} ({err})", file=sys.stderr)
        sys.exit(1)
    print(found)
