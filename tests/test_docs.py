"""The docs: every command in them is run by a test or marked as not run here, README.md is a
short landing page that starts with its two commands, and every local link resolves.

Commands are the lines of fenced ```bash blocks in README.md, docs/*.md and bench/README.md (a
line ending in a backslash continues on the next one). Each command ends with a comment whose
last part is a marker, either alone or after a note and "; ":

    some command --flag    # tested: tests/test_x.py::test_name
    some command --flag    # a note; tested: .ci/run
    some command --flag    # not run here: needs internet

- `tested: tests/test_x.py::test_name`: that file defines `test_name`, which runs this command
  or the same invocation of the same code.
- `tested: .ci/run` (or another script .ci/run runs, such as `scripts/setup.sh`): a line of
  that script is this command, perhaps with more words in between (`pip install --quiet ...`).
- `not run here: <reason>`: no test runs it, for the reason given.

The marker runs from `tested:` or `not run here:` to the end of the line; on a continued
command it is on the last line. docs/testing.md says the same for readers.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND_PAGES = [*PAGES, REPO / "bench" / "README.md"]
README_COMMANDS = ["bash scripts/setup.sh && .venv/bin/snakemake --cores all",
                   "bash scripts/setup.sh && .venv/bin/python -m pytest"]

FENCE = re.compile(r"^\s*```")
# a comment: whitespace, '#', whitespace, then text to the end of the line
COMMENT = re.compile(r"\s#\s(.*)$")
MARKER = re.compile(r"(?:^|;\s)(tested|not run here):\s*(.*)$")


def bash_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of every command in the file's ```bash blocks; a command continued
    over several lines is joined with newlines and numbered by its first line."""
    commands, in_bash, in_other, pending = [], False, False, None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            if in_bash or in_other:
                in_bash = in_other = False
            else:
                language = line.strip()[3:].strip().lower()
                in_bash, in_other = language in ("bash", "sh", "shell"), language not in ("bash", "sh", "shell")
            continue
        if not in_bash:
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + "\n" + line)
        elif line.strip() and not line.strip().startswith("#"):
            pending = (number, line)
        if pending is not None and not line.rstrip().endswith("\\"):
            commands.append(pending)
            pending = None
    if pending is not None:
        commands.append(pending)
    return commands


def marker(command: str) -> tuple[str, str] | None:
    """('tested' or 'not run here', what follows it) from the command's last line, else None."""
    comment = COMMENT.search(command.splitlines()[-1])
    if comment is None:
        return None
    found = MARKER.search(comment.group(1))
    return (found.group(1), found.group(2).strip()) if found else None


def without_comment(command: str) -> str:
    return COMMENT.sub("", command).strip()


def marker_problem(command: str) -> str | None:
    """What is wrong with the command's marker, or None."""
    found = marker(command)
    if found is None:
        return "no marker (end it with '# tested: tests/test_x.py::test_name' or '# not run here: <reason>')"
    kind, target = found
    if kind == "not run here":
        return None if target else "'not run here:' without a reason"
    test_file, separator, test_name = target.partition("::")
    if not separator:
        return script_problem(target, without_comment(command))
    if not test_file.startswith("tests/") or not test_name:
        return f"'tested: {target}': expected tests/<file>.py::<test name> or a script CI runs"
    if not (REPO / test_file).is_file():
        return f"'tested: {target}': {test_file} does not exist"
    if not re.search(rf"^\s*def {re.escape(test_name)}\(", (REPO / test_file).read_text(), re.M):
        return f"'tested: {target}': {test_file} has no test {test_name}"
    return None


def script_problem(script: str, command: str) -> str | None:
    """Whether CI runs `script` (.ci/run, or a script .ci/run names) and a line of it runs `command`:
    the command's words in order, other words (options such as --quiet) allowed in between."""
    if script != ".ci/run" and script not in (REPO / ".ci" / "run").read_text():
        return f"'tested: {script}': .ci/run does not run {script}"
    if not (REPO / script).is_file():
        return f"'tested: {script}': {script} does not exist"
    wanted = command.replace("\\\n", " ").split()
    for line in (REPO / script).read_text().splitlines():
        words = iter(line.split())
        if all(word in words for word in wanted):  # `in` on an iterator consumes it: words in order
            return None
    return f"'tested: {script}': no line of {script} runs this command"


def test_every_command_in_the_docs_is_tested_or_marked_as_not_run_here():
    problems = []
    for path in COMMAND_PAGES:
        if not path.is_file():
            continue
        for number, command in bash_commands(path):
            problem = marker_problem(command)
            if problem:
                problems.append(f"{path.relative_to(REPO)}:{number}: {command.strip()}\n    {problem}")
    assert not problems, "\n".join(problems)


def test_the_marker_grammar():
    assert marker("ls   # tested: .ci/run") == ("tested", ".ci/run")
    assert marker("ls   # a note; tested: tests/test_docs.py::test_the_marker_grammar") == (
        "tested", "tests/test_docs.py::test_the_marker_grammar")
    assert marker("ls   # not run here: needs internet; and a GPU") == ("not run here", "needs internet; and a GPU")
    assert marker("ls   # set up, run the tests") is None
    assert marker("ls   # the command tested: elsewhere") is None  # a marker starts the comment or follows '; '
    assert marker("ls \\\n  -l   # tested: .ci/run") == ("tested", ".ci/run")
    assert marker_problem("ls   # tested: tests/test_docs.py::test_no_such_test").endswith("has no test test_no_such_test")
    assert marker_problem("ls   # tested: tests/test_nothing_here.py::test_x").endswith("does not exist")
    assert marker_problem("ls   # tested: .ci/run") == "'tested: .ci/run': no line of .ci/run runs this command"
    assert marker_problem("bash scripts/setup.sh   # tested: .ci/run") is None
    assert marker_problem(".venv/bin/python -m pip install --no-deps -e .   # tested: scripts/setup.sh") is None
    assert marker_problem(".venv/bin/python -m pip install -e . --no-deps   # tested: scripts/setup.sh") is not None
    assert marker_problem("bash scripts/lock.sh   # tested: scripts/lock.sh").endswith(".ci/run does not run scripts/lock.sh")
    assert marker_problem("ls   # not run here:") == "'not run here:' without a reason"
    assert marker_problem("ls") is not None


def test_commands_are_read_from_bash_blocks_only_with_their_continuations(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("ls not-a-command\n\n```\nprepare_data ──> train\n```\n\n```bash\n# a comment line\n"
                    "first --a \\\n  --b   # tested: .ci/run\n\nsecond   # not run here: why\n```\n")
    assert bash_commands(page) == [(9, "first --a \\\n  --b   # tested: .ci/run"), (12, "second   # not run here: why")]


def test_the_readme_is_a_short_page_that_starts_with_its_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"
    first_block = [number for number, line in enumerate(lines) if FENCE.match(line)][:2]
    assert first_block and first_block[0] < 5, "README.md should open with its commands"
    block = lines[first_block[0] + 1:first_block[1]]
    assert [without_comment(line) for line in block[:2]] == README_COMMANDS
    assert "## Headline result" in lines


# --- links ---

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lowercase, punctuation dropped (but '-' and '_'),
    spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeats numbered as GitHub numbers them."""
    found, seen, in_code = set(), {}, False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            name = anchor(heading.group(1))
            found.add(name if name not in seen else f"{name}-{seen[name]}")
            seen[name] = seen.get(name, 0) + 1
    return found


def local_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code that does not leave the repository."""
    links, in_code = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                links.append((number, target))
    return links


def link_problem(page: Path, target: str) -> str | None:
    file_part, _, fragment = target.partition("#")
    linked = (page.parent / file_part).resolve() if file_part else page
    if not linked.exists():
        return f"{file_part} does not exist"
    if fragment and linked.suffix == ".md" and fragment not in anchors(linked):
        return f"{file_part or 'this page'} has no heading with anchor #{fragment}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_local_link_resolves(page):
    problems = [f"{page.relative_to(REPO)}:{number}: ({target}): {problem}"
                for number, target in local_links(page) if (problem := link_problem(page, target))]
    assert not problems, "\n".join(problems)


def test_anchors_and_links_as_github_reads_them(tmp_path):
    assert anchor("Archive, verify, restore") == "archive-verify-restore"
    assert anchor("No wait for a missing controller") == "no-wait-for-a-missing-controller"
    assert anchor("`lpips` and CLIP_weights (2)") == "lpips-and-clip_weights-2"
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Part\n\n## Part\n\n```\n# not a heading\n```\n"
                    "[a](#part-1) [b](#title) [c](page.md#part) `[d](#inline-code)` [e](https://example.org/x)\n")
    assert anchors(page) == {"title", "part", "part-1"}
    assert [target for _, target in local_links(page)] == ["#part-1", "#title", "page.md#part"]
    assert all(link_problem(page, target) is None for _, target in local_links(page))
    assert link_problem(page, "#not-a-heading") == "this page has no heading with anchor #not-a-heading"
    assert link_problem(page, "page.md#nothing") == "page.md has no heading with anchor #nothing"
    assert link_problem(page, "missing.md") == "missing.md does not exist"
