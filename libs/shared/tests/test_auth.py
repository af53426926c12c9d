import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from rateline_shared.auth import JwksVerifier, Principal, claims_for
from rateline_shared.errors import Unauthorized
from rateline_shared.testing import TestKeys


def verifier(keys: TestKeys) -> JwksVerifier:
    return JwksVerifier(issuer=keys.issuer, audience=keys.audience, jwks_json=keys.jwks_json)


async def test_valid_token_gives_tenant_and_scopes(test_keys: TestKeys) -> None:
    p = await verifier(test_keys).verify(test_keys.token("acme", ["usage:write", "customers:*"]))
    assert p.tenant == "acme"
    assert p.has_scope("usage:write") and p.has_scope("customers:read")
    assert not p.has_scope("usage:read") and not p.has_scope("invoices:write")


def test_admin_grants_everything() -> None:
    assert Principal("c", "t", frozenset({"admin"})).has_scope("payments:write")


@pytest.mark.parametrize("case", ["expired", "other-key", "wrong-audience", "wrong-issuer", "no-tenant", "garbage"])
async def test_bad_tokens_are_refused(test_keys: TestKeys, case: str) -> None:
    key = test_keys.key
    claims = claims_for(client_id="c", tenant="acme", scopes=["admin"], issuer=test_keys.issuer,
                        audience=test_keys.audience, ttl=600)
    if case == "expired":
        claims["exp"] = claims["iat"] - 60
    elif case == "other-key":
        key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    elif case == "wrong-audience":
        claims["aud"] = "someone-else"
    elif case == "wrong-issuer":
        claims["iss"] = "evil"
    elif case == "no-tenant":
        del claims["tenant"]
    token = "not.a.jwt" if case == "garbage" else jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
    with pytest.raises(Unauthorized):
        await verifier(test_keys).verify(token)
