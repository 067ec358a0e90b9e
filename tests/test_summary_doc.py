"""summary.json's published schema and page are what the types that define it say."""

from sweep.edges import summary_doc


def test_the_published_schema_and_page_are_up_to_date():
    assert summary_doc.main(["--check"]) == 0, "run python -m sweep.edges.summary_doc"


def test_every_field_of_the_page_has_a_type_and_the_units_are_stated():
    page = summary_doc.PAGE_FILE.read_text()
    assert "`format`" in page and "musweep-summary 1" in page
    assert "log2 units" in page and "fraction of the loss" in page
    for status in ("passes", "within_noise", "inconclusive", "fails"):
        assert f"`{status}`" in page
