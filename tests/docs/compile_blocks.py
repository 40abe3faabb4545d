#!/usr/bin/env python3
"""Compile every C++ block of a Markdown file as written (the `docs` ctest).

Usage: compile_blocks.py COMPILER INCLUDE_DIR WORK_DIR FILE.md [FLAG...]

A block fenced ```cpp (or ```c++) is one translation unit: it is written to WORK_DIR with a
#line directive naming FILE.md, so a diagnostic points at the Markdown line, and compiled with
COMPILER -std=c++20 -Wall -Wextra -Wpedantic -Werror -I INCLUDE_DIR -c, plus any FLAGs. Nothing
is added to it: no include, no using-directive, no enclosing function. A block whose info string
also says `synopsis` (```cpp synopsis) is a declaration listing for reading and is skipped.
The convention is stated for doc writers in docs/index.md. Exits 1 if any block fails to
compile, or if FILE.md has no block to compile (then it should not be registered).
"""
import os
import re
import subprocess
import sys

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$")
CXX_LANGUAGES = {"cpp", "c++", "cxx"}


def blocks(path):
    """Yields (first_line_number, info_words, text) for each fenced block of path."""
    with open(path, encoding="utf-8") as markdown:
        lines = markdown.read().split("\n")
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, language, rest = opening.groups()
        closing = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[index + 1:end]]
        yield index + 2, [language.lower()] + rest.lower().split(), "\n".join(body) + "\n"
        index = end + 1


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    compiler, include_dir, work_dir, path = sys.argv[1:5]
    extra_flags = sys.argv[5:]
    os.makedirs(work_dir, exist_ok=True)
    name = os.path.basename(path)
    compiled = skipped = 0
    failures = []
    for line, info, text in blocks(path):
        if info[0] not in CXX_LANGUAGES:
            continue
        if "synopsis" in info:
            skipped += 1
            continue
        stem = os.path.join(work_dir, f"{os.path.splitext(name)[0]}.{line}")
        with open(stem + ".cpp", "w", encoding="utf-8") as source:
            source.write(f'#line {line} "{path}"\n{text}')
        command = [compiler, "-std=c++20", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                   "-I", include_dir, *extra_flags, "-c", stem + ".cpp", "-o", stem + ".o"]
        result = subprocess.run(command, capture_output=True, text=True)
        compiled += 1
        if result.returncode != 0:
            failures.append(line)
            print(f"FAIL {name}:{line} does not compile as written ({' '.join(command)}):")
            print(result.stdout + result.stderr)
        else:
            print(f"ok   {name}:{line}")
    print(f"{name}: {compiled} block(s) compiled with {compiler}, {len(failures)} failed, "
          f"{skipped} synopsis block(s) skipped")
    if compiled == 0:
        print(f"{name}: no ```cpp block to compile; do not register it as a docs test")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
