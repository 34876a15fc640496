"""Who may do what (SPEC.md §6): OAuth2 clients, access tokens and scopes, free of Flask so that the
commands use them as the server does."""

from .scopes import ALL, NO_ACCESS, Access, authorize
from .tokens import Claims, InvalidToken, OAuthError, Tokens, check_jwks

__all__ = ["ALL", "Access", "Claims", "InvalidToken", "NO_ACCESS", "OAuthError", "Tokens", "authorize", "check_jwks"]
