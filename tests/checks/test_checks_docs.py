"""docs/checks.md documents every suite from the code: its generated section is up to date."""

from __future__ import annotations

from checks.docs import DOC_PATH, catalogue_markdown, render


def test_docs_list_every_suite_and_are_up_to_date():
    page = DOC_PATH.read_text(encoding="utf-8")
    catalogue = catalogue_markdown()
    assert render(page, catalogue) == page, "docs/checks.md is out of date: run `python -m checks.docs`"
    from checks import suite_names

    for name in suite_names():
        assert f"### `{name}`" in catalogue
    # every expectation's why is on the page
    assert "a duplicated row is counted twice in every sum built on it" in page
    assert "every payout's \\|residual\\| ≤ `payout_tolerance`" in page
