"""Token checks against a real OpenID provider: the good, the expired, the forged."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mlaas4hep.auth import AuthError, AuthSettings, TokenVerifier

from support.oidc_provider import AUDIENCE, OidcProvider, start_provider

pytestmark = pytest.mark.integration


def verifier_for(provider: OidcProvider, **options: object) -> TokenVerifier:
    return TokenVerifier(
        AuthSettings(issuer=provider.issuer, audience=[AUDIENCE], leeway_s=0, **options)
    )


def test_a_token_from_the_provider_identifies_the_user(oidc: OidcProvider) -> None:
    principal = verifier_for(oidc).verify(oidc.access_token("alice"))
    assert principal.subject == "alice-sub" and principal.name == "alice"
    assert principal.groups == ("mlaas-users",) and not principal.is_admin
    assert verifier_for(oidc).verify(oidc.access_token("admin")).is_admin


def test_a_service_token_from_client_credentials_is_accepted(oidc: OidcProvider) -> None:
    assert verifier_for(oidc).verify(oidc.service_token()).subject == "mlaas4hep-services"


# Times are seconds from when the test runs (not from collection: a long suite outlasts them).
@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (lambda now: {"exp": now - 60}, "token expired at .*`mlaas4hep token`"),
        (lambda now: {"aud": "urn:another:service"}, "not meant for this service"),
        (lambda now: {"iss": "http://127.0.0.1:1"}, "not issued by"),
        (lambda now: {"nbf": now + 600}, "not valid yet"),
    ],
    ids=["expired", "audience", "issuer", "not-yet-valid"],
)
def test_tokens_with_the_real_key_but_wrong_claims_are_refused(
    oidc: OidcProvider, claims: Callable[[int], dict], message: str
) -> None:
    with pytest.raises(AuthError, match=message) as error:
        verifier_for(oidc).verify(oidc.mint(claims(int(time.time()))))
    assert error.value.status == 401


def test_a_forged_token_is_refused(oidc: OidcProvider) -> None:
    other_key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(AuthError, match="signature is not valid"):
        verifier_for(oidc).verify(oidc.mint({}, key=other_key))  # the provider's kid, wrong key
    with pytest.raises(AuthError, match="does not publish"):
        verifier_for(oidc).verify(oidc.mint({}, key=other_key, kid="made-up"))


def test_missing_or_malformed_tokens_are_refused(oidc: OidcProvider) -> None:
    with pytest.raises(AuthError, match="missing bearer token"):
        verifier_for(oidc).verify(None)
    with pytest.raises(AuthError, match="malformed token"):
        verifier_for(oidc).verify("not.a.jwt")


def test_keys_are_fetched_again_when_the_provider_rotates_them() -> None:
    provider = start_provider()
    try:
        verifier = verifier_for(provider, jwks_cache_s=3600, jwks_refresh_cooldown_s=0)
        assert verifier.verify(provider.access_token("alice")).subject == "alice-sub"
        provider.stop()
        provider.key = rsa.generate_private_key(65537, 2048)  # same issuer URL, new key
        provider.kid = "rotated-key"
        provider.start()
        assert verifier.verify(provider.access_token("bob")).subject == "bob-sub"
    finally:
        provider.stop()


def test_an_unreachable_issuer_is_a_503_not_a_401() -> None:
    verifier = TokenVerifier(AuthSettings(issuer="http://127.0.0.1:1", audience=[AUDIENCE]))
    with pytest.raises(AuthError, match="cannot reach the identity provider") as error:
        verifier.verify("a.b.c")
    assert error.value.status == 503


def test_a_token_from_oidc_agent_through_liboidcagent_is_accepted(oidc: OidcProvider) -> None:
    import os

    from support.oidc_agent import start_agent

    agent = start_agent(oidc, "mlaas-test", "bob")
    try:
        from liboidcagent import get_access_token

        previous = os.environ.get("OIDC_SOCK")
        os.environ["OIDC_SOCK"] = agent.env["OIDC_SOCK"]
        try:
            token = get_access_token("mlaas-test", min_valid_period=60)
        finally:
            if previous is None:
                os.environ.pop("OIDC_SOCK")
            else:
                os.environ["OIDC_SOCK"] = previous
        assert verifier_for(oidc).verify(token).subject == "bob-sub"
    finally:
        agent.stop()
