"""summary.json's published schema and page are what the types that define it say."""

from sweep.edges import summary_doc


def test_the_published_schema_and_page_are_up_to_date():
    assert summary_doc.main(["--check"]) == 0, "run python -m sweep.edges.summary_doc"


def test_a_section_built_on_others_documents_their_fields_too():
    """A TypedDict keeps no record of its bases at run time: the comments of the fields it
    inherits are found through its class statement, and a field it redefines keeps its own."""
    from sweep.core.sections import ModelCheck, Sections, Summary, TargetComparison, TargetSection

    for cls, base in ((TargetComparison, TargetSection), (Summary, Sections)):
        inherited = summary_doc.field_comments(base)
        assert inherited, base.__name__
        own = summary_doc.field_comments(cls)
        notes = summary_doc.comments(cls)
        assert {k: notes[k] for k in inherited if k not in own} == {
            k: v for k, v in inherited.items() if k not in own
        }
    assert summary_doc.comments(ModelCheck).keys() > summary_doc.field_comments(ModelCheck).keys()
    page = summary_doc.PAGE_FILE.read_text()
    assert "| `width` | int |  | the target's width |" in page
