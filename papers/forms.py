from django import forms

from papers.notes import validate_note


class NoteField(forms.CharField):
    """An editor's note, checked by the rule the model and the services check (no maxlength of
    its own: that would be a second limit, on markup readers do not see)."""

    default_validators = [validate_note]

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)


class FeatureNoteForm(forms.Form):
    note = NoteField()


class ListField(forms.CharField):
    """A list (a JSON list in the model) edited as text: one item per line, or, for `words`,
    separated by spaces or commas, rather than as raw JSON."""

    def __init__(self, *, words=False, **kwargs):
        self.words = words
        widget = forms.TextInput if words else forms.Textarea(attrs={"rows": 5})
        super().__init__(required=False, widget=widget, **kwargs)

    def prepare_value(self, value):
        return (" " if self.words else "\n").join(value) if isinstance(value, list) else value

    def to_python(self, value):
        value = super().to_python(value)
        items = value.replace(",", " ").split() if self.words else value.splitlines()
        return [item.strip() for item in items if item.strip()]


class PaperForm(forms.ModelForm):
    authors = ListField(help_text="One author per line, in order.")
    categories = ListField(words=True, help_text="arXiv categories, primary first, e.g. cs.LG cs.AI")
