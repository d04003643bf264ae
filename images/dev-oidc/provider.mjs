// The development OpenID provider of MLaaS4HEP: for the local target (no cloud account) and the
// tests, on loopback only. Never a production identity provider.
//
// Usage: node provider.mjs CONFIG.json   (written by the local target, or tests/support)
// CONFIG: {port, issuer, audience, access_ttl, jwks: {keys: [private RS256 JWK]},
//          clients: [...], users: [{sub, username, password, email, name, groups}]}
// Access tokens are RS256 JWTs for `audience`, carrying a `groups` claim. Besides the standard
// flows (authorization code, device code, refresh token, client credentials) a test-only
// password grant lets oidc-agent and the tests log in without a browser.
import fs from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((user) => [user.sub, user]));
const RESOURCE_SCOPE = 'mlaas';
const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email', 'groups']);

function resourceServerInfo(audience) {
  return {
    scope: RESOURCE_SCOPE,
    audience,
    accessTokenTTL: config.access_ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  scopes: [...OIDC_SCOPES, RESOURCE_SCOPE],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => resourceServerInfo(resource),
    },
  },
  async findAccount(ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: user.email, email_verified: true, name: user.name,
          preferred_username: user.username, groups: user.groups,
        };
      },
    };
  },
  async extraTokenClaims(ctx, token) {
    const user = users.get(token.accountId);
    return user ? { groups: user.groups, preferred_username: user.username } : {};
  },
  ttl: {
    AccessToken: config.access_ttl,
    ClientCredentials: config.access_ttl,
    RefreshToken: 86400,
    DeviceCode: 600,
    Grant: 86400,
    IdToken: 3600,
    Interaction: 600,
    Session: 86400,
  },
  issueRefreshToken: async (ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  pkce: { required: () => false },
});

async function passwordGrant(ctx, next) {
  const { client, params } = ctx.oidc;
  const user = [...users.values()].find((u) => u.username === params.username);
  if (!user || user.password !== params.password) {
    throw new errors.InvalidGrant('invalid username or password');
  }
  const requested = new Set(String(params.scope || 'openid').split(' ').filter(Boolean));
  const oidcScope = [...requested].filter((s) => OIDC_SCOPES.has(s)).join(' ') || 'openid';
  const resource = params.resource || config.audience;
  const grant = new provider.Grant({ accountId: user.sub, clientId: client.clientId });
  grant.addOIDCScope(oidcScope);
  grant.addResourceScope(resource, RESOURCE_SCOPE);
  const grantId = await grant.save();
  const accessToken = new provider.AccessToken({
    accountId: user.sub,
    client,
    grantId,
    gty: 'password',
    scope: RESOURCE_SCOPE,
    resourceServer: new provider.ResourceServer(resource, resourceServerInfo(resource)),
  });
  const body = {
    access_token: await accessToken.save(),
    expires_in: accessToken.expiration,
    token_type: 'Bearer',
    scope: `${oidcScope} ${RESOURCE_SCOPE}`,
  };
  if (requested.has('offline_access') && client.grantTypeAllowed('refresh_token')) {
    const refreshToken = new provider.RefreshToken({
      accountId: user.sub,
      client,
      grantId,
      gty: 'password',
      scope: oidcScope,
      resource,
    });
    body.refresh_token = await refreshToken.save();
  }
  ctx.body = body;
  await next();
}

for (const event of ['server_error', 'grant.error']) {
  provider.on(event, (ctx, error) => console.error(event, error));
}

provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope', 'resource']);

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
