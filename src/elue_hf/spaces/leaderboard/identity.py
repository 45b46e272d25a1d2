"""Who uploads to the leaderboard web app: the identity the daily limits are counted against.

Three sources the server can trust, in this order, and anonymous uploads only when the operator allows them:

- the Hub's OAuth login (``gr.LoginButton``; gradio hands the signed-in user to the submit function as a
  ``gr.OAuthProfile``) in a Space whose card says ``hf_oauth: true``: ``hf:<username>``;
- a header set by a trusted reverse proxy in front of a local deployment (``--identity-header X-Forwarded-User``):
  ``header:<value>`` (only safe when the proxy strips the header from what clients send);
- a submit token the operator handed out (``ELUE_SUBMIT_TOKENS="alice:<token>,bob:<token>"``), typed into the
  Submit tab: ``token:<name>``;
- otherwise ``anonymous`` (one quota shared by every anonymous visitor) if ``allow_anonymous``, else refused.

The typed "Submitter" name is only what the table shows; it is never an identity.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["Identities", "IdentityError", "parse_tokens", "SIGN_IN_NEEDED"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_MIN_TOKEN = 16
SIGN_IN_NEEDED = ("anonymous submissions are off on this leaderboard: sign in with your Hugging Face account (the "
                  "Sign in button), or use the submit token the maintainers gave you")


class IdentityError(ValueError):
    """A misconfigured identity source (the message names the setting)."""


def parse_tokens(text: str | None) -> dict[str, str]:
    """``"alice:<token>,bob:<token>"`` -> ``{token: name}``; tokens of at least 16 characters, names unique."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, token = item.partition(":")
        if not sep or not _NAME.fullmatch(name) or len(token) < _MIN_TOKEN or token in out:
            raise IdentityError(f"ELUE_SUBMIT_TOKENS: each item must be name:token with a token of at least "
                                f"{_MIN_TOKEN} characters, each token once (item starting {item[:12]!r})")
        if name in out.values():
            raise IdentityError(f"ELUE_SUBMIT_TOKENS: the name {name!r} appears twice")
        out[token] = name
    return out


def _truthy(value) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Identities:
    """How the app knows who uploads (see the module docstring)."""

    oauth: bool = False
    header: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Identities":
        """``SPACE_ID`` (set by Spaces) or ``ELUE_OAUTH=1``: OAuth; ``ELUE_IDENTITY_HEADER``; ``ELUE_SUBMIT_TOKENS``;
        ``ELUE_ALLOW_ANONYMOUS=1``."""
        return cls(oauth=bool(env.get("SPACE_ID")) or _truthy(env.get("ELUE_OAUTH")),
                   header=env.get("ELUE_IDENTITY_HEADER") or None, tokens=parse_tokens(env.get("ELUE_SUBMIT_TOKENS")),
                   allow_anonymous=_truthy(env.get("ELUE_ALLOW_ANONYMOUS")))

    def resolve(self, profile=None, headers: Mapping[str, str] | None = None, token: str = "") -> str | None:
        """The identity of one upload, or None when it has none this server trusts (then it is refused)."""
        username = getattr(profile, "username", None) if self.oauth else None
        if isinstance(username, str) and username:
            return f"hf:{username}"
        if self.header and headers is not None:
            value = headers.get(self.header.lower()) or headers.get(self.header)
            if isinstance(value, str) and value.strip():
                return f"header:{value.strip()[:100]}"
        if token:
            for known, name in self.tokens.items():
                if hmac.compare_digest(known.encode(), str(token).encode()):
                    return f"token:{name}"
        return "anonymous" if self.allow_anonymous else None

    def describe(self) -> str:
        """One line for the Submit tab: how to identify yourself here."""
        ways = (["sign in with your Hugging Face account"] if self.oauth else []) + \
               (["your submit token"] if self.tokens else []) + \
               (["your account at this site"] if self.header else [])
        if self.allow_anonymous:
            return "Anonymous uploads are allowed here (all anonymous visitors share one daily limit)" + \
                (f"; or identify with {' or '.join(ways)}." if ways else ".")
        if not ways:
            return "Submissions need an identity and none is configured here: uploads are refused."
        return f"Identify with {' or '.join(ways)}: the daily limits count per identity."
