import re
import zoneinfo

from django import forms
from django.core.exceptions import ValidationError

from newsletter.models import VOTE_CHOICES, Subscriber, comma_list, email_canonical
from papers.models import Topic
from papers.references import MAX_FILE_BYTES, MAX_REFERENCES, BadReferences, parse_file, parse_pasted

MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 60
TIMEZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


def clean_single_line(value, label):
    # CR/LF in anything that may reach a mail header is an injection attempt, not a typo.
    if re.search(r"[\r\n\x00]", value):
        raise ValidationError(f"{label} must be on a single line.")
    return value


def clean_email_address(value):
    value = clean_single_line(value, "The e-mail address")
    try:
        return email_canonical(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None


class KeywordsField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(
            required=False,
            max_length=500,
            help_text=f"Optional. Up to {MAX_KEYWORDS} words or phrases, separated by commas.",
            widget=forms.TextInput(attrs={"placeholder": "e.g. quantization, diffusion, Mamba"}),
            **kwargs,
        )

    def clean(self, value):
        value = clean_single_line(super().clean(value), "Keywords")
        keywords = comma_list(value)
        if len(keywords) > MAX_KEYWORDS:
            raise ValidationError(f"At most {MAX_KEYWORDS} keywords, please.")
        too_long = [k for k in keywords if len(k) > MAX_KEYWORD_LENGTH]
        if too_long:
            raise ValidationError(f"Each keyword may be at most {MAX_KEYWORD_LENGTH} characters.")
        return ", ".join(dict.fromkeys(keywords))


class TopicsField(forms.ModelMultipleChoiceField):
    def __init__(self, **kwargs):
        super().__init__(
            queryset=Topic.objects.all(),
            required=False,
            widget=forms.CheckboxSelectMultiple,
            error_messages={"invalid_choice": "Unknown topic: %(value)s.", "invalid_pk_value": "Unknown topic: %(pk)s."},
            **kwargs,
        )


class SubscribeForm(forms.Form):
    email = forms.EmailField(max_length=254, label="E-mail address", widget=forms.EmailInput(attrs={"placeholder": "you@university.edu", "autocomplete": "email"}))
    topics = TopicsField()
    keywords = KeywordsField()
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, initial=Subscriber.Frequency.DAILY, widget=forms.RadioSelect)
    # Honeypot: hidden from people by CSS; bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty", widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}))

    def clean_email(self):
        return clean_email_address(self.cleaned_data["email"])

    def is_bot(self):
        return bool(self.cleaned_data.get("website"))


class VoteForm(forms.Form):
    vote = forms.TypedChoiceField(choices=VOTE_CHOICES, coerce=int, widget=forms.RadioSelect)


class EmailForm(forms.Form):
    email = forms.EmailField(max_length=254, label="E-mail address")

    def clean_email(self):
        return clean_email_address(self.cleaned_data["email"])


class AuthorsField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(
            required=False,
            max_length=1000,
            label="Followed authors",
            help_text="Optional. Names separated by commas; matched ignoring case and accents.",
            widget=forms.TextInput(attrs={"placeholder": "e.g. Ada Lovelace, Zoë Ünal"}),
            **kwargs,
        )

    def clean(self, value):
        value = clean_single_line(super().clean(value), "Authors")
        names = [" ".join(n.split()) for n in value.split(",") if n.strip()]
        if any(len(n) > 100 for n in names):
            raise ValidationError("Each name may be at most 100 characters.")
        return ", ".join(dict.fromkeys(names))


class TimezoneForm(forms.Form):
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES], label="Time zone")


class PreferencesForm(forms.Form):
    topics = TopicsField()
    keywords = KeywordsField()
    authors = AuthorsField()
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, widget=forms.RadioSelect)
    weekday = forms.TypedChoiceField(choices=Subscriber.Weekday.choices, coerce=int, label="Day (weekly digests)")
    hour = forms.TypedChoiceField(choices=[(h, f"{h:02d}:00") for h in range(24)], coerce=int, label="Send at (your local time)")
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES], label="Time zone")

    @classmethod
    def for_subscriber(cls, subscriber, data=None):
        initial = {
            "topics": list(subscriber.topics.all()),
            "keywords": subscriber.keywords,
            "authors": subscriber.authors,
            "frequency": subscriber.frequency,
            "weekday": subscriber.weekday,
            "hour": subscriber.hour,
            "timezone": subscriber.timezone,
        }
        return cls(data=data, initial=initial)

    def full_clean(self):
        super().full_clean()
        # A rejected choice is not in the list: the browser would show the first one instead
        # (Africa/Abidjan) and the next Save would store it. Show the saved one beside the error.
        rejected = [name for name in ("weekday", "hour", "timezone") if name in self.errors]
        if rejected:
            self.data = self.data.copy()
            for name in rejected:
                self.data[name] = self.initial[name]

class SeedForm(forms.Form):
    """A reader's own papers, pasted or as a file; read into cleaned_data["references"]."""

    ids = forms.CharField(
        label="arXiv ids or links", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One or more, e.g. 2403.09611 or https://arxiv.org/abs/2403.09611",
    )
    file = forms.FileField(
        label="Or a file", required=False,
        help_text=f"BibTeX (.bib), RIS or Zotero CSV export; at most {MAX_REFERENCES} papers. Only the papers found are kept, not the file.",
    )

    def clean(self):
        references = []
        try:
            references += parse_pasted(self.cleaned_data.get("ids") or "")
        except BadReferences as e:
            self.add_error("ids", str(e))
        upload = self.cleaned_data.get("file")
        if upload:
            try:
                references += parse_file(upload.read(MAX_FILE_BYTES + 1))
            except BadReferences as e:
                self.add_error("file", f"{upload.name}: {e}")
        if not self.errors:
            if not references:
                raise ValidationError("Paste arXiv ids or links, or choose a file that lists papers.")
            if len(references) > MAX_REFERENCES:
                raise ValidationError(f"At most {MAX_REFERENCES} papers at a time; this was {len(references)}.")
        self.cleaned_data["references"] = references
        return self.cleaned_data
