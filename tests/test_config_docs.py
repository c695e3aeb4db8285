"""docs/configuration.md is written from the config schema and must stay in step with it."""

from gradienthide import cli, config_docs
from gradienthide.config import load_schema


def test_the_configuration_page_is_current(repo, capsys):
    page = repo / "docs" / "configuration.md"
    assert cli.main(["config-docs", "-o", str(page), "--check"]) == 0, capsys.readouterr().err


def test_every_key_of_the_schema_is_documented_with_its_type_default_and_description():
    page = config_docs.render()
    schema = load_schema()
    for top in schema["properties"]:
        assert f"\n## `{top}`\n" in page
    assert "| `training.rounds` | integer ≥ 1 | *required* |" in page
    assert "| `threads` | integer ≥ 1 | `1` | Torch threads per job" in page
    assert "| `defenses.gradienthide.also[].draws` | one of \"independent\", \"disjoint\", \"repeated\" or list of (one of" in page
    keys = [row[0] for row in config_docs.rows(schema, schema)]
    assert len(keys) == len(set(keys)) > 100


def test_a_stale_page_is_reported_with_the_command_that_rewrites_it(tmp_path, capsys):
    page = tmp_path / "configuration.md"
    page.write_text(config_docs.render().replace("Torch threads per job", "Threads"))
    assert cli.main(["config-docs", "-o", str(page), "--check"]) == 1
    assert f"gradienthide config-docs -o {page}" in capsys.readouterr().err
