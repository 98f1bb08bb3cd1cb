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
