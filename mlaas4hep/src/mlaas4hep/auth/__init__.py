"""Bearer-token checks shared by every MLaaS4HEP service (workflow server, TFaaS)."""

from mlaas4hep.auth.tokens import AuthError, AuthSettings, Principal, TokenVerifier

__all__ = ["AuthError", "AuthSettings", "Principal", "TokenVerifier"]
