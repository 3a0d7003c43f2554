"""The login forms of the portal and the admin with the username's length enforced.

Django's AuthenticationForm sets the username field's `max_length` after the field is built,
so no validator checks it: a 100,000-character username reached `authenticate()` and
django-axes' record of the failure (a 255-character column), a server error instead of the
form's error.
"""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class BoundedAuthenticationForm(AuthenticationForm):
    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length))
        self.fields["password"].validators.append(MaxLengthValidator(4096))


class BoundedAdminAuthenticationForm(AdminAuthenticationForm, BoundedAuthenticationForm):
    pass
