"""Django's database sessions, the session read compiled once (`billingsite.queries`).

Every portal request reads its session first; through the ORM that read was built and compiled
again each time (~5 % of a portal page's CPU). Same table, same statement, same expiry rule
(`expire_date` after now), same behaviour for an unknown or expired key: no session.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from billingsite.queries import compiled_read


@compiled_read
def _live_session(*, session_key: str, now):
    return Session.objects.filter(session_key=session_key, expire_date__gt=now)[:1]


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        if type(self.session_key) is not str:
            return super()._get_session_from_db()
        session = _live_session.first(session_key=self.session_key, now=timezone.now())
        if session is None:
            self._session_key = None
        return session
